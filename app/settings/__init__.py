"""What the user set and what llamadesk fitted: config.json (user_config), load.json
(load_config), fields typed in the UI (input_fields), chat defaults, and doctor's report."""
