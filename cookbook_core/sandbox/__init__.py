"""Running untrusted template code (user-edited or model-drafted) in a limited child process."""
