from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from departments import selectors
from portal import roles


@login_required
def department_detail(request, slug: str):
    """A department's namespaces, people, quotas and service levels. A department the
    user may not see answers 404, exactly like one that does not exist."""
    department = get_object_or_404(
        selectors.department_overviews_for_user(user=request.user), slug=slug
    )
    role = selectors.department_roles_for_user(user=request.user).get(department.pk)
    visible = selectors.department_ids_for_user(user=request.user)
    return render(
        request,
        "departments/department_detail.html",
        {
            "department": department,
            "role": role,
            # Members see the rules they work under; the people list is for managers,
            # finance and IT.
            "show_people": role == "manager" or roles.sees_all_departments(request.user),
            "parent_visible": department.parent_id is not None
            and (visible is None or department.parent_id in visible),
            "children": [
                c for c in department.children.all() if visible is None or c.pk in visible
            ],
            "off_peak_windows": selectors.off_peak_windows_for_user(user=request.user).filter(
                active=True
            ),
            "now": timezone.now(),
        },
    )
