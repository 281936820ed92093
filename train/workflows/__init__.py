"""Workflows that chain labelling and training.

Modules:
    train.workflows.student_teacher: student as teacher, round after round (svc-loop).
"""
