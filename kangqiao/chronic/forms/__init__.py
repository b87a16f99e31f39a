"""The national follow-up forms as FHIR Questionnaires, and their answers as coded
Observations and as the rules' ``FollowUpVisit``."""

from kangqiao.chronic.forms.observations import (
    MEASURES,
    answers_from_response,
    observations_from_answers,
)
from kangqiao.chronic.forms.questionnaires import questionnaire
from kangqiao.chronic.forms.visit import visit_from_answers

__all__ = [
    "MEASURES",
    "answers_from_response",
    "observations_from_answers",
    "questionnaire",
    "visit_from_answers",
]
