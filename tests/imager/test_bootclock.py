"""Boot stage timings: marks from /init and the agent turned into durations that add up."""
from imager import bootclock


def test_marks_become_stages_in_the_order_they_came_and_add_up_to_the_total(tmp_path):
    uptime, path = tmp_path / "uptime", str(tmp_path / "run/imager/boot-stages")
    for name, seconds in [("init", 5.04), ("coldplug", 5.50), ("python", 6.90), ("devices", 7.20),
                          ("network", 8.10), ("checkin", 8.25)]:
        uptime.write_text(f"{seconds} 1.00\n")
        bootclock.mark(name, path, str(uptime))
    durations = bootclock.stages(bootclock.marks(path))
    assert durations == {"kernel to /init": 5.04, "udev start": 0.46, "python start": 1.4, "udev settle": 0.3,
                         "network": 0.9, "check-in": 0.15, "total": 8.25}
    assert abs(sum(v for k, v in durations.items() if k != "total") - durations["total"]) < 0.02
    assert bootclock.summary(durations).endswith("task running 8.2 s")


def test_udev_settled_before_python_was_ready_counts_nothing_twice(tmp_path):
    path = tmp_path / "stages"
    path.write_text("init 4.0\ncoldplug 4.5\ndevices 5.0\npython 6.5\nnetwork 7.0\ncheckin 7.1\n")
    durations = bootclock.stages(bootclock.marks(str(path)))
    assert list(durations) == ["kernel to /init", "udev start", "udev settle", "python start", "network", "check-in", "total"]
    assert durations["python start"] == 1.5 and durations["total"] == 7.1


def test_missing_or_garbled_marks_leave_out_what_is_unknown_and_never_fail(tmp_path):
    path = tmp_path / "stages"
    assert bootclock.stages(bootclock.marks(str(path))) == {}              # no file: nothing to say
    path.write_text("init 4.0\nnetwork soon\npython x\ncheckin 9.0\ninit 99\n")
    assert bootclock.stages(bootclock.marks(str(path))) == {"kernel to /init": 4.0, "check-in": 5.0, "total": 9.0}
    bootclock.mark("init", str(path), str(tmp_path / "no-uptime"))       # unreadable clock: no mark, no error
    assert bootclock.marks(str(path))["init"] == 4.0
