from t2v.cli import entry_point

entry_point()
