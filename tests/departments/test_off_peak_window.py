import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from departments.models import OffPeakWindow

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")


def window(**fields) -> OffPeakWindow:
    defaults = {
        "name": "Nightly",
        "weekdays": list(range(7)),
        "start_time": dt.time(23),
        "end_time": dt.time(7),
        "time_zone": "Europe/Berlin",
    }
    return OffPeakWindow(**{**defaults, **fields})


def berlin(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (berlin(2026, 11, 23, 22, 59), False),
        (berlin(2026, 11, 23, 23, 0), True),
        (berlin(2026, 11, 24, 3, 0), True),
        (berlin(2026, 11, 24, 6, 59), True),
        (berlin(2026, 11, 24, 7, 0), False),
        (berlin(2026, 11, 24, 12, 0), False),
    ],
)
def test_a_nightly_window_runs_from_23_to_7(moment, inside):
    assert window().contains(moment) is inside


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (berlin(2026, 11, 27, 23, 30), True),  # Friday night: opened on Friday
        (berlin(2026, 11, 28, 6, 0), True),  # Saturday morning: still Friday's window
        (berlin(2026, 11, 28, 23, 30), False),  # Saturday night: no window opens
        (berlin(2026, 11, 30, 3, 0), False),  # Monday 03:00 would be Sunday's window
        (berlin(2026, 11, 24, 3, 0), True),  # Tuesday 03:00 is Monday's window
    ],
)
def test_a_window_belongs_to_the_weekday_it_opens_on(moment, inside):
    assert window(weekdays=[0, 1, 2, 3, 4]).contains(moment) is inside


@pytest.mark.parametrize(
    ("utc_moment", "inside"),
    [
        (dt.datetime(2026, 1, 15, 22, 30, tzinfo=UTC), True),  # 23:30 CET
        (dt.datetime(2026, 1, 15, 21, 30, tzinfo=UTC), False),  # 22:30 CET
        (dt.datetime(2026, 7, 15, 21, 30, tzinfo=UTC), True),  # 23:30 CEST
        (dt.datetime(2026, 7, 15, 5, 30, tzinfo=UTC), False),  # 07:30 CEST
    ],
)
def test_the_window_follows_its_own_time_zone(utc_moment, inside):
    assert window().contains(utc_moment) is inside


def _minutes_inside(w: OffPeakWindow, start: dt.datetime, end: dt.datetime) -> int:
    minutes, moment = 0, start
    while moment < end:
        minutes += w.contains(moment)
        moment += dt.timedelta(minutes=1)
    return minutes


@pytest.mark.parametrize(
    ("night_start_utc", "hours"),
    [
        (dt.datetime(2026, 3, 28, 12, tzinfo=UTC), 7),  # clocks go forward: 23:00 CET to 07:00 CEST
        (dt.datetime(2026, 10, 24, 12, tzinfo=UTC), 9),  # clocks go back: 23:00 CEST to 07:00 CET
        (dt.datetime(2026, 11, 21, 12, tzinfo=UTC), 8),
    ],
    ids=["spring-forward", "fall-back", "ordinary"],
)
def test_a_night_across_a_clock_change_has_its_real_length(night_start_utc, hours):
    day = dt.timedelta(days=1)
    assert _minutes_inside(window(), night_start_utc, night_start_utc + day) == hours * 60


def test_equal_start_and_end_mean_the_whole_day():
    weekend = window(weekdays=[5, 6], start_time=dt.time(0), end_time=dt.time(0))
    assert weekend.contains(berlin(2026, 11, 28, 12, 0))  # Saturday noon
    assert weekend.contains(berlin(2026, 11, 29, 23, 59))  # Sunday night
    assert not weekend.contains(berlin(2026, 11, 30, 0, 0))  # Monday


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"weekdays": []}, "weekdays"),
        ({"weekdays": [7]}, "weekdays"),
        ({"weekdays": [1, 1]}, "weekdays"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"price_multiplier": Decimal(0)}, "price_multiplier"),
    ],
)
def test_validation_refuses_a_window_that_cannot_be_applied(db, fields, field):
    with pytest.raises(ValidationError) as refused:
        window(**fields).full_clean()
    assert field in refused.value.message_dict


def test_database_refuses_a_multiplier_that_is_not_positive(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        window(price_multiplier=Decimal("-0.5")).save()


def test_api_creates_a_window_and_reports_whether_it_is_open(world, api_client):
    api_client.force_login(world.user("it_admin"))
    response = api_client.post(
        "/api/v1/off-peak-windows/",
        {
            "name": "All week",
            "start_time": "00:00",
            "end_time": "00:00",
            "time_zone": "UTC",
            "price_multiplier": "0.8",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["weekdays"] == [0, 1, 2, 3, 4, 5, 6]
    assert response.json()["is_open_now"] is True  # a window covering every hour is always open


def test_api_refuses_an_unknown_time_zone(world, api_client):
    api_client.force_login(world.user("it_admin"))
    response = api_client.patch(
        f"/api/v1/off-peak-windows/{world.off_peak.pk}/",
        {"time_zone": "Europe/Atlantis"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["time_zone"] == [
        "“Europe/Atlantis” is not an IANA time zone (for example Europe/Berlin)."
    ]
