"""A dead-letter filter as the console's form gives it, turned into a bulk redrive's."""

from __future__ import annotations

import pytest

from taskhub.core.errors import ValidationError
from taskhub.service.dead_letters import DeadLetterFilter


def test_no_dead_letter_filter_is_an_explicit_redrive_of_all() -> None:
    assert DeadLetterFilter().redrive_body() == {"all": True}
    body = DeadLetterFilter("abc", ("team:ops", "env:prod"), "2030-01-01T00:00:00Z").redrive_body()
    assert body == {
        "task_id": "abc",
        "tags": {"team": "ops", "env": "prod"},
        "since": "2030-01-01T00:00:00Z",
    }


@pytest.mark.parametrize("tags", [("nocolon",), ("team:ops", "team:dev")])
def test_a_tag_filter_that_cannot_be_a_redrive_is_refused(tags: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as refused:
        DeadLetterFilter(tags=tags).redrive_body()
    assert refused.value.field == "tag"
