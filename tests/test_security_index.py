"""Security review: the pip-facing routes (in-process app)."""

from __future__ import annotations

import pytest

from tests.support.admin import AdminSite


@pytest.fixture
def site(tmp_path):
    return AdminSite(tmp_path)


@pytest.mark.parametrize(
    "path",
    [
        "/simple/foo%0d%0aX-Injected:%201",
        "/simple/Foo%0d%0aX-Injected:%201/",
        "/simple/foo%0a/",
        "/simple/-foo",
        "/simple/%E2%80%AEfoo",
    ],
)
def test_a_path_that_is_no_project_name_is_a_404_never_a_redirect(site, path):
    response = site.client().get(path)
    assert response.status_code == 404 and "Location" not in response.headers


def test_names_still_redirect_to_their_normal_form(site):
    client = site.client()
    for path, target in [
        ("/simple/Foo.Bar", "/simple/foo-bar/"),
        ("/simple/Foo_Bar/?format=json", "/simple/foo-bar/?format=json"),
        ("/simple/foo", "/simple/foo/"),
    ]:
        response = client.get(path)
        assert response.status_code == 301 and response.headers["Location"] == target
