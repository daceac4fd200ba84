"""One client module per platform: the only code that talks HTTP and maps its failures."""
