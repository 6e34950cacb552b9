"""Built-in intent classifiers."""
