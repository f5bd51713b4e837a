"""How the API answers errors: DRF's handler, plus the errors Django and the database raise.

Kept apart from :mod:`core.api` because DRF reads the permission classes there while
``rest_framework.views`` (which this module needs) is still loading.
"""

import re

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, InterfaceError, OperationalError
from django.db.models import ProtectedError
from django.http import Http404
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from core.api import error_detail

_MODEL_NOT_FOUND = re.compile(r"No \w+ matches the given query\.")


def exception_handler(exc, context):
    """DRF's handler, plus clear answers for the errors the database or the models raise:
    a Django ``ValidationError`` is a 400 with field errors, a deletion blocked by objects
    that still refer to the target is a 409 naming them, and a constraint violation that
    slipped past validation (two concurrent writes) is a 409 asking to retry, and a
    database that cannot be reached is a 503 with ``Retry-After``.
    """
    if isinstance(exc, OperationalError | InterfaceError):
        set_rollback()
        return Response(
            {
                "detail": "The portal's database cannot be reached right now, so this request "
                "may not have completed. Try again in a few seconds; a job sent again with "
                "the same idempotency_key is never submitted twice."
            },
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, DjangoValidationError | ProtectedError | IntegrityError):
        set_rollback()
    if isinstance(exc, DjangoValidationError):
        return Response(error_detail(exc), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ProtectedError):
        referrers = sorted({str(obj) for obj in exc.protected_objects})[:10]
        return Response(
            {
                "detail": "It is still in use and cannot be deleted; remove or change these "
                "first: " + ", ".join(referrers)
            },
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, IntegrityError):
        return Response(
            {
                "detail": "This change conflicts with another one made at the same time; "
                "reload and try again."
            },
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, Http404) and _MODEL_NOT_FOUND.fullmatch(str(exc)):
        # get_object_or_404's words name the model class ("No GenerationJob matches the
        # given query."): an internal name, and the same answer whatever the reason.
        exc = Http404("Not found: it does not exist, or is not among those you can see.")
    return drf_exception_handler(exc, context)
