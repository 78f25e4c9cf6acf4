"""What the tests share: helpers, fixtures' building blocks, launcher daemons."""
