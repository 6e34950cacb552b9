"""A/B experiments (SPEC §8): definitions, sticky allocation at run start, results with significance."""
