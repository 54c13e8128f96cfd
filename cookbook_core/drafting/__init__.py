"""Model-drafted templates (issue 17): a language model writes a template's code from a
task description, the template API, worked examples and real rows; every candidate
then goes through static checks, a sandboxed preview, its own checker and its rule's
alignment on the task's real rows, and only a candidate that passes all of them can
be saved, into the user's (untrusted) template folder.

Modules, one idea each:

* :mod:`.contracts` how a task's real rows become the inputs a drafted checker reads;
* :mod:`.prompts` the drafting prompt and the repair prompt;
* :mod:`.extract` the code inside a model's answer;
* :mod:`.asking` asking a model (through the project's backends) for candidates;
* :mod:`.checks` the per-candidate pipeline with one clear reason per failure;
* :mod:`.loop` the drafting loop: k candidates, repair rounds, the ranked table;
* :mod:`.saving` provenance and saving the best passing candidate;
* :mod:`.job` the ``draft`` job kind: the loop in the background, its run folder.

Drafted code is untrusted: nothing here imports or executes it in this process; it
runs only through :mod:`cookbook_core.sandbox.runner`.
"""
