"""Vision-SR1: self-rewarded GRPO for vision-language models."""
