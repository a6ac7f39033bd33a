"""Plugin hook specifications: one per component kind, each taking a `register` callback."""

import pluggy

hookspec = pluggy.HookspecMarker("emolab")
hookimpl = pluggy.HookimplMarker("emolab")


@hookspec
def register_extractors(register):
    """Register extractors: activations per emotion -> one direction per emotion."""


@hookspec
def register_aligners(register):
    """Register aligners: paired activations of two models -> a map with a score."""


@hookspec
def register_interventions(register):
    """Register interventions: params -> (hook_name, hook_fn) pairs applied in a context."""


@hookspec
def register_evaluators(register):
    """Register evaluators: a run (prompts, logits, texts) -> named metrics."""


@hookspec
def register_models(register):
    """Register model sources: a name -> a loaded model."""


@hookspec
def register_datasets(register):
    """Register datasets: a name -> labelled texts in train/dev/test splits."""


@hookspec
def register_commands(cli):
    """Add click commands to the `emolab` command group."""
