from server_stub.bootpolicy import BootContext, ImagerBoot, LocalBoot, decide, render_chain_script, render_ipxe

CTX = BootContext(base_url="http://10.0.0.1:8080", extra_args="console=ttyS0")
HOST = {"id": 1, "mac": "52:54:00:00:00:01", "name": "pc1"}
TASK = {"id": 9, "state": "queued", "token": "tok"}


def test_a_queued_task_boots_the_imager_with_its_parameters():
    spec = decide(HOST["mac"], HOST, TASK, CTX)
    assert isinstance(spec, ImagerBoot)
    assert spec.kernel_url == "http://10.0.0.1:8080/files/vmlinuz"
    assert spec.initrd_url == "http://10.0.0.1:8080/files/initrd.img"
    for arg in ("imager.server=http://10.0.0.1:8080", "imager.task=9", "imager.token=tok",
                "imager.mac=52:54:00:00:00:01", "console=ttyS0"):
        assert arg in spec.cmdline.split()
    script = render_ipxe(spec)
    assert script.startswith("#!ipxe\n") and "kernel http://10.0.0.1:8080/files/vmlinuz" in script
    assert "initrd --name initrd.img http://10.0.0.1:8080/files/initrd.img" in script and "boot" in script


def test_a_running_task_still_boots_the_imager_after_a_crash():
    assert isinstance(decide(HOST["mac"], HOST, {**TASK, "state": "running"}, CTX), ImagerBoot)


def test_everything_else_boots_the_local_disk():
    assert decide(HOST["mac"], None, None, CTX) == LocalBoot("unknown host")
    assert decide(HOST["mac"], HOST, None, CTX) == LocalBoot("no task")
    for state in ("done", "failed", "canceled"):
        assert isinstance(decide(HOST["mac"], HOST, {**TASK, "state": state}, CTX), LocalBoot)
    script = render_ipxe(LocalBoot("no task"))
    assert "sanboot --no-describe --drive 0x80 || exit" in script and "kernel" not in script


def test_the_tftp_entry_script_chains_to_http_per_mac():
    assert "chain http://10.0.0.1:8080/boot/${net0/mac}.ipxe" in render_chain_script("http://10.0.0.1:8080")
    assert "chain http://${next-server}:8080/boot/" in render_chain_script("http://${next-server}:8080")
