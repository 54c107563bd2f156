"""Evaluation of generated benchmark responses: join with gold answers, rule-based grading, an LLM judge for
what the rules call wrong, and result tables across benchmarks and runs.

Modules: ``benchmarks`` (the known benchmarks and how each is graded), ``records`` (reading response files and
gold answers, joined by ``dataset_index``), ``judge`` (judge backends, retries, cache, verdict parsing),
``llm_eval`` (grading one folder of responses), ``results`` (tables, comparison, language-shortcut rates).
"""
