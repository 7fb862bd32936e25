"""The technician's screen: the dialog menu, the blessed progress and failure screens, the console setup."""
