"""Multiserver systems and video servers added, changed and deleted from the pages."""

from django.contrib.auth.models import Group, User

from accounts.models import AuditEntry, SystemAccess
from accounts.roles import ADMINISTRATORS
from servers.models import MultiserverSystem, RedundancySettings, Server

SERVER = {"name": "srv-new", "address": "10.0.0.5", "api_port": 8080, "retention_hours": 72, "merge_back": "on"}


def test_an_administrator_adds_a_system_then_a_server_into_it_and_both_are_audited(admin_client, admin_user):
    page = admin_client.get("/servers/").content.decode()
    assert 'href="/servers/systems/new/"' in page
    added = admin_client.post("/servers/systems/new/", {"name": "Harbour", "description": "North gate"})
    assert added.status_code == 302
    harbour = MultiserverSystem.objects.get(name="Harbour")
    form = admin_client.get(f"/servers/new/?system={harbour.pk}").content.decode()
    assert f'<option value="{harbour.pk}" selected>' in form
    created = admin_client.post("/servers/new/", {**SERVER, "system": harbour.pk})
    server = Server.objects.get(name="srv-new")
    assert created.status_code == 302 and created["Location"] == f"/servers/{server.pk}/"
    assert server.system == harbour and server.address == "10.0.0.5"
    assert RedundancySettings.objects.filter(server=server).exists()  # its Backup section is there to set
    audited = AuditEntry.objects.filter(action="created", user=admin_user).values_list("object_type", "object_repr")
    assert {("servers.multiserversystem", "Harbour"), ("servers.server", "srv-new")} <= set(audited)


def test_a_server_is_changed_and_bad_input_changes_nothing(admin_client, site):
    a = site["a"]
    url = f"/servers/{a.pk}/edit/"
    assert "Settings" in admin_client.get(f"/servers/{a.pk}/").content.decode()
    refused = admin_client.post(url, {**SERVER, "name": "srv-a", "system": a.system_id, "address": "not a host!",
                                      "api_port": 70000})  # fmt: skip
    assert refused.status_code == 400
    body = refused.content.decode()
    assert "This form was not saved" in body and "Address" in body and "API port" in body
    a.refresh_from_db()
    assert a.address == "127.0.0.1"
    saved = admin_client.post(url, {**SERVER, "name": "srv-a", "system": a.system_id, "address": "10.0.0.9"})
    assert saved.status_code == 302
    a.refresh_from_db()
    assert a.address == "10.0.0.9"


def test_rule_1_refuses_moving_a_server_that_shares_cameras_out_of_its_system(admin_client, site, make_camera):
    make_camera(site["a"], site["b"], name="gate")
    moved = {**SERVER, "name": "srv-a", "system": site["other"].system_id}
    refused = admin_client.post(f"/servers/{site['a'].pk}/edit/", moved)
    assert refused.status_code == 400 and "Rule 1" in refused.content.decode() and "srv-b" in refused.content.decode()
    site["a"].refresh_from_db()
    assert site["a"].system == site["system"]


def test_a_deletion_still_in_use_is_refused_with_what_uses_it(admin_client, site, make_camera):
    make_camera(site["a"], name="gate")
    refused = admin_client.post(f"/servers/{site['a'].pk}/delete/", follow=True)
    assert "srv-a was not deleted. Still in use by: gate." in refused.content.decode()
    assert Server.objects.filter(pk=site["a"].pk).exists()
    system = admin_client.post(f"/servers/systems/{site['system'].pk}/delete/", follow=True).content.decode()
    assert "Site was not deleted. Still in use by: srv-a, srv-b, srv-c." in system
    deleted = admin_client.post(f"/servers/{site['c'].pk}/delete/", follow=True)
    assert "Server srv-c deleted." in deleted.content.decode()
    assert not Server.objects.filter(name="srv-c").exists()
    assert AuditEntry.objects.filter(action="deleted", object_type="servers.server", object_repr="srv-c").exists()
    empty = MultiserverSystem.objects.create(name="Empty")
    assert admin_client.post(f"/servers/systems/{empty.pk}/delete/").status_code == 302
    assert not MultiserverSystem.objects.filter(pk=empty.pk).exists()


def test_a_user_limited_to_a_system_adds_servers_only_to_it_and_no_system(client, site):
    sam = User.objects.create_user("sam", "sam@example.com", "a-long-test-passphrase")
    sam.groups.add(Group.objects.get(name=ADMINISTRATORS))
    SystemAccess.objects.create(user=sam, system=site["system"])
    client.force_login(sam)
    assert "/servers/systems/new/" not in client.get("/servers/").content.decode()
    assert client.post("/servers/systems/new/", {"name": "Sams own"}).status_code == 403
    assert not MultiserverSystem.objects.filter(name="Sams own").exists()
    form = client.get("/servers/new/").content.decode()
    assert "Other site" not in form and "Site" in form
    refused = client.post("/servers/new/", {**SERVER, "system": site["other"].system_id})
    assert refused.status_code == 400 and "valid choice" in refused.content.decode()
    assert not Server.objects.filter(name="srv-new").exists()
    taken = client.post("/servers/new/", {**SERVER, "name": "srv-other", "system": site["system"].pk})
    assert "This name is not available." in taken.content.decode() and "already exists" not in taken.content.decode()


def test_who_may_only_look_changes_nothing(client, viewer, site):
    client.force_login(viewer)
    page = client.get("/servers/").content.decode()
    assert "/servers/new/" not in page and "/edit/" not in page and "/servers/systems/new/" not in page
    for url in ("/servers/new/", f"/servers/{site['a'].pk}/edit/", f"/servers/systems/{site['system'].pk}/"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/servers/{site['c'].pk}/delete/").status_code == 403
    assert client.post(f"/servers/systems/{site['system'].pk}/delete/").status_code == 403
    assert Server.objects.filter(pk=site["c"].pk).exists()
