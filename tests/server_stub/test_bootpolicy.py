from dataclasses import replace

from server_stub.bootpolicy import (BootContext, ImagerBoot, LocalBoot, MenuBoot, claim_of, decide, describe,
                                    render_chain_script, render_ipxe, render_pxelinux)

CTX = BootContext(base_url="http://10.0.0.1:8080", extra_args="console=ttyS0")
HOST = {"id": 1, "mac": "52:54:00:00:00:01", "name": "pc1"}
TASK = {"id": 9, "state": "queued", "token": "tok"}


def test_a_queued_task_boots_the_imager_with_its_parameters():
    spec = decide(HOST["mac"], HOST, TASK, CTX)
    assert isinstance(spec, ImagerBoot)
    assert spec.kernel_url == "http://10.0.0.1:8080/files/vmlinuz"
    assert spec.initrd_url == "http://10.0.0.1:8080/files/initrd.img"
    for arg in ("imager.server=http://10.0.0.1:8080", "imager.task=9", f"imager.claim={claim_of('tok')}",
                "imager.mac=52:54:00:00:00:01", "console=ttyS0"):
        assert arg in spec.cmdline.split()
    script = render_ipxe(spec)
    assert script.startswith("#!ipxe\n") and "kernel http://10.0.0.1:8080/files/vmlinuz" in script
    assert "initrd --name initrd.img http://10.0.0.1:8080/files/initrd.img" in script and "boot" in script


def test_a_running_task_still_boots_the_imager_after_a_crash():
    assert isinstance(decide(HOST["mac"], HOST, {**TASK, "state": "running"}, CTX), ImagerBoot)


def test_everything_else_boots_the_local_disk():
    assert decide(HOST["mac"], None, None, replace(CTX, unknown_hosts="local")) == LocalBoot("unknown host")
    assert decide(HOST["mac"], HOST, None, CTX) == LocalBoot("no task")
    for state in ("done", "failed", "canceled"):
        assert isinstance(decide(HOST["mac"], HOST, {**TASK, "state": state}, CTX), LocalBoot)
    script = render_ipxe(LocalBoot("no task"))
    assert "sanboot --no-describe --drive 0x80 || exit" in script and "kernel" not in script


def test_the_tftp_entry_script_chains_to_http_per_mac():
    assert "chain http://10.0.0.1:8080/boot/${net0/mac}.ipxe" in render_chain_script("http://10.0.0.1:8080")
    assert "chain http://${next-server}:8080/boot/" in render_chain_script("http://${next-server}:8080")


def test_an_unknown_mac_gets_a_menu_whose_default_is_the_local_disk():
    spec = decide("52:54:00:00:00:99", None, None, CTX)  # the default policy, like FOG
    assert isinstance(spec, MenuBoot) and spec.timeout == 3
    assert "imager.mode=register" in spec.register.cmdline.split()
    assert "imager.mode=menu" in spec.menu.cmdline.split()
    for boot in (spec.register, spec.menu):  # no task, so no token and no task number
        assert "imager.claim" not in boot.cmdline and "imager.task" not in boot.cmdline
        assert "imager.mac=52:54:00:00:00:99" in boot.cmdline.split()
    script = render_ipxe(spec)
    assert "choose --timeout 3000 --default local target || set target local" in script
    # The local branch is the one the timeout (or Esc) reaches; it never loads a kernel.
    local = script.split(":local\n", 1)[1]
    assert "sanboot --no-describe --drive 0x80" in local and "kernel" not in local
    assert ":register\n" in script and "item register Quick registration and inventory" in script
    assert describe(spec) == "menu: unknown host (local disk after 3 s)"
    pxelinux = render_pxelinux(spec)
    assert pxelinux.startswith("DEFAULT local\nPROMPT 1\nTIMEOUT 30\n") and "LABEL register" in pxelinux


def test_register_policy_boots_the_imager_in_registration_mode():
    spec = decide("52:54:00:00:00:99", None, None, replace(CTX, unknown_hosts="register"))
    assert isinstance(spec, ImagerBoot) and "imager.mode=register" in spec.cmdline.split()
    assert describe(spec) == "imager: register"
    # A known host without a task still boots its disk, whatever the policy for unknown ones.
    assert decide(HOST["mac"], HOST, None, replace(CTX, unknown_hosts="register")) == LocalBoot("no task")
