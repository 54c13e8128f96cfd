"""What the Streamlit studio's pages show: shared widgets and page logic."""
