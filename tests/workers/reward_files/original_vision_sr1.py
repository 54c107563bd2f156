"""A reward file written for the original Vision-SR1 repository: parallel lists in, one dict per response out.

``description_answers`` holds the answer given from the visual description alone (the self-reward hop)."""

from mathruler.grader import extract_boxed_content, grade_answer


def compute_score(predicts, ground_truths, questions, description_answers, format_weight=0.1):
    results = []
    for predict, truth, question, described in zip(predicts, ground_truths, questions, description_answers):
        correct = 1.0 if grade_answer(extract_boxed_content(predict), truth) else 0.0
        perceived = 1.0 if described and grade_answer(described, truth) else 0.0
        results.append(
            {
                "overall": (1 - format_weight) * correct + format_weight * perceived,
                "accuracy": correct,
                "description": perceived,
                "asked": float(len(question)),
            }
        )
    return results


def per_response(predict, ground_truth, question):
    """The original's sequential form: three strings per call."""
    return {"overall": 1.0 if predict.strip() == ground_truth else 0.0, "asked": float(len(question))}
