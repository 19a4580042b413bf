"""The numbers table: a written number's digits are prediction rows linked to it, in order, and
go with it when it is deleted, on both databases."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from digits.db.migrate import upgrade_head
from digits.db.models import NumberRow, PredictionRow, utcnow
from digits.db.session import make_engine


def _digit_row(number_id: uuid.UUID | None, position: int | None, digit: int) -> PredictionRow:
    return PredictionRow(
        id=uuid.uuid4(),
        created_at=utcnow(),
        digit=digit,
        confidence=0.9,
        probabilities=[0.1] * 10,
        status="ok",
        source="api",
        model_version="v",
        input_png=b"png",
        latency_ms=1.0,
        number_id=number_id,
        position=position,
        box=None if position is None else [10 * position, 0, 10 * position + 8, 20],
    )


def test_digits_belong_to_their_number_and_go_with_it(empty_database_url: str) -> None:
    upgrade_head(empty_database_url)
    engine = make_engine(empty_database_url)
    number_id = uuid.uuid4()
    try:
        with Session(engine) as session:
            session.add(
                NumberRow(
                    id=number_id,
                    created_at=utcnow(),
                    number="2026",
                    confidence=0.8,
                    status="uncertain",
                    source="api",
                    model_version="v",
                    strokes=[[[1.0, 2.0], [3.0, 4.0]]],
                    latency_ms=3.0,
                )
            )
            session.flush()
            session.add_all(
                [_digit_row(number_id, k, int(d)) for k, d in reversed(list(enumerate("2026")))]
            )
            session.add(_digit_row(None, None, 7))
            session.commit()

            digits = session.scalars(
                select(PredictionRow.digit)
                .where(PredictionRow.number_id == number_id)
                .order_by(PredictionRow.position)
            ).all()
            assert "".join(map(str, digits)) == "2026"
            number = session.get(NumberRow, number_id)
            assert number is not None and not number.not_a_number and number.true_number is None

            session.execute(delete(NumberRow).where(NumberRow.id == number_id))
            session.commit()
            assert session.scalar(select(func.count()).select_from(PredictionRow)) == 1
    finally:
        engine.dispose()
