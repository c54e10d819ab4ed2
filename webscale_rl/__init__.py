"""webscale-rl: web pages in, verifiable RL question-answer pairs out."""

__version__ = "0.1.0"
