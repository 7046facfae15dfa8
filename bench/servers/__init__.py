"""Reference servers the harness compares our greeter against."""
