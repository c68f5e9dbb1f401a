"""`python -m calozoo`: the `calozoo` command line."""

from calozoo_tools.cli import main

if __name__ == "__main__":
    main(prog_name="calozoo")
