"""The Streamlit entry point (`streamlit run digits/ui/app.py`, or `digits ui`): four pages.

They live in `views/`, not `pages/`: Streamlit would serve a `pages/` folder beside the entry
point as pages of its own, and a link to /history opened first would run that module, not the app.
"""

from __future__ import annotations

import streamlit as st

from digits.ui.session import get_client, remember_in_browser
from digits.ui.views import draw, history, models, stats


def main() -> None:
    st.set_page_config(page_title="Digits", page_icon=":material/draw:", layout="wide")
    navigation = st.navigation(
        [
            st.Page(
                draw.render, title="Draw", icon=":material/draw:", url_path="draw", default=True
            ),
            st.Page(history.render, title="History", icon=":material/history:", url_path="history"),
            st.Page(
                stats.render, title="Statistics", icon=":material/bar_chart:", url_path="statistics"
            ),
            st.Page(
                models.render, title="Models", icon=":material/model_training:", url_path="models"
            ),
        ],
        position="top",
    )
    # The browser's API session, resumed or begun here on every page (a page may first ask
    # for it inside a callback), and kept in a cookie below the page.
    get_client()
    navigation.run()
    remember_in_browser()


if __name__ == "__main__":
    main()
