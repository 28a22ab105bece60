"""What talks to a VLM: backends (transformers, OpenAI-compatible servers), versioned
prompts, the response cache, the answer parser, strategies (sparse, dense, shuffled,
MSCE and its controls) and the visual-prompt variants.

Layer: above io/plan/targets and faces/motion; below eval, train and the CLI.
"""
