"""tinybuild's Renode backend (``sim=renode``): generated .repl/.resc, run headless."""
