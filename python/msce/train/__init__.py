"""Training: the class-balanced sampler and LoRA fine-tuning of VLMs.

Layer: above eval (it evaluates what it trains); below the CLI.
"""
