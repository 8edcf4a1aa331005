"""Browser tests of the live node dashboard, in Debian's headless Chromium."""
