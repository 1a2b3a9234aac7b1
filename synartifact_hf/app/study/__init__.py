"""The paper's user study as a web app: raters score two generators' images of the same prompt and seed
side by side (1-7, sides randomised, models hidden); ratings go to SQLite; the report draws Fig. 9 and
tests the difference.

:mod:`.pairs` pairs the two eval-generator folders by item; :mod:`.store` is the SQLite database
(raters, per-rater order and sides, ratings, every check on what comes in); :mod:`.statistics` holds
the Wilcoxon signed-rank test and Krippendorff's alpha; :mod:`.report` writes the report and the
ratings dataset; :mod:`.ui` is the Gradio page; :mod:`.cli_study` the ``synartifact-hf study`` command.
Only :mod:`.ui` imports gradio.
"""
