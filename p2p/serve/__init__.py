"""p2p-serve: any trained run as a web page (python -m p2p.serve --workdir=RUN).

engine.py holds the model side (no Gradio), examples.py the palette and example inputs,
info.py the run's info panel, app.py the Gradio page and cli.py the command. Gradio is the
optional `serve` extra: pip install -e '.[serve]'.
"""
