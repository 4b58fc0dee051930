import pytest

from tests.users.factories import UserFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/admin/users/user/",
        "/admin/users/apikey/",
        "/admin/users/auditevent/",
        "/admin/users/workspacesecurity/",
        "/admin/users/oauthclient/",
        "/admin/oauth2_provider/application/",
        "/admin/oauth2_provider/accesstoken/",
        "/admin/socialaccount/socialapp/",
    ],
)
def test_operator_pages_load(client, path):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert client.get(path + "?q=a").status_code == 200


def test_api_key_admin_never_shows_the_secret(client, user, workspace):
    key, plaintext = make_api_key(user=user, workspace=workspace)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    for path in ("/admin/users/apikey/", f"/admin/users/apikey/{key.id}/change/"):
        response = client.get(path)
        assert response.status_code == 200
        body = response.content.decode()
        assert key.prefix in body
        assert plaintext not in body
        assert key.key_hash not in body
