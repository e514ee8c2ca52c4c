"""``appInfo``: the Spark UI and driver log URLs, on loopback; YARN clears the driver log URL at the end."""

from __future__ import annotations

from urllib.parse import urlsplit

from standin_helpers import Client, wait_for


def app_info(http: Client, batch_id: int = 0) -> dict[str, str | None]:
    return http.get(f"/batches/{batch_id}").json()["appInfo"]  # type: ignore[no-any-return]


def test_no_urls_while_starting(http: Client) -> None:
    http.submit("starting", startingSeconds="30")
    assert app_info(http) == {"driverLogUrl": None, "sparkUiUrl": None, "executorLogUrls": None}


def test_both_urls_on_loopback_while_running(http: Client) -> None:
    http.submit("running", startingSeconds="0", durationSeconds="30")
    info = app_info(http)
    app_id = http.get("/batches/0").json()["appId"]
    assert info["sparkUiUrl"] == f"{http.url}/fake-cluster/{app_id}/spark-ui"
    assert info["driverLogUrl"] == f"{http.url}/fake-cluster/{app_id}/driver-log"
    assert all(urlsplit(url).hostname == "127.0.0.1" for url in (info["sparkUiUrl"], info["driverLogUrl"]))


def test_the_driver_log_url_is_cleared_when_the_batch_ends(http: Client) -> None:
    http.submit("ends", startingSeconds="0", durationSeconds="0.2", outcome="dead")
    wait_for(lambda: http.get("/batches/0/state").json()["state"] == "dead")
    info = app_info(http)
    assert info["driverLogUrl"] is None
    assert info["sparkUiUrl"] is not None  # the history server's page stays


def test_the_driver_log_url_is_cleared_when_the_batch_is_killed(http: Client) -> None:
    http.submit("killed", startingSeconds="0", durationSeconds="30")
    assert app_info(http)["driverLogUrl"] is not None
    listed = http.get("/batches").json()["sessions"][0]["appInfo"]
    assert listed == app_info(http)
    http.delete("/batches/0")
    (batch,) = http.admin_batches()
    assert batch["state"] == "killed"
