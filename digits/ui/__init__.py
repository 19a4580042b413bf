"""The web app: a thin Streamlit storyboard over the prediction API (no torch, no SQL here)."""
