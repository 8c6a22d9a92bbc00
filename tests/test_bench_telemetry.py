"""GPU and host telemetry, and the MPS daemon's commands."""

from __future__ import annotations

import time

from benchmarks.sharing.bench import records, summary, telemetry


def test_proc_parsers():
    stat = "cpu  100 5 50 1000 20 3 2 40 7 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n"
    assert telemetry.parse_cpu_jiffies(stat) == (160, 40, 1220)
    assert telemetry.parse_cpu_jiffies("intr 1 2 3") is None
    status = "Name:\tpython3\nVmHWM:\t  1048576 kB\nVmRSS:\t   524288 kB\n"
    assert telemetry.parse_kib_field(status, "VmHWM") == 1024.0
    assert telemetry.parse_kib_field(status, "VmRSS") == 512.0
    assert telemetry.parse_kib_field(status, "Pss") is None
    fields = " ".join(str(i) for i in range(3, 53))  # fields 3..52; field 39 holds 39
    assert telemetry.parse_last_cpu(f"1234 (python3 -c x) {fields}") == 39  # a name with spaces
    assert telemetry.parse_last_cpu("1234 (short) S 1") is None
    assert telemetry.parse_smi_telemetry("1980, 3201, 41, [N/A], 97\n") == {
        "sm_clock_mhz": 1980.0,
        "mem_clock_mhz": 3201.0,
        "temp_c": 41.0,
        "gpu_util_pct": 97.0,
    }


def test_telemetry_monitor_samples_until_stopped():
    reads = []

    def read_gpu():
        reads.append(1)
        if len(reads) == 2:
            raise RuntimeError("NVML hiccup")  # one failed read must not stop the sampling
        return {"sm_clock_mhz": 1980.0, "temp_c": 40.0}

    with telemetry.TelemetryMonitor(read_gpu, interval_s=0.01) as monitor:
        time.sleep(0.1)
    samples = monitor.samples
    assert len(samples) >= 3
    assert [x.t for x in samples] == sorted(x.t for x in samples)
    assert samples[0].sm_clock_mhz == 1980.0
    assert samples[1].sm_clock_mhz is None
    count = len(samples)
    time.sleep(0.05)
    assert len(monitor.samples) == count  # the thread is gone


def test_host_memory_drop_counts_shared_pages_once():
    trace = [
        records.TelemetrySample(t=i, mem_available_mib=m) for i, m in enumerate((9000, 7000, 7500))
    ]
    assert summary.host_memory_drop_mib(trace) == 2000
    assert summary.host_memory_drop_mib(trace[:1]) is None
