"""Flow tests: conversation test cases run on throwaway engines, transition coverage, and replay."""
