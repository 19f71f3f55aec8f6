"""Small widgets the screens are built from; no business logic lives here."""
