"""What the GPU and the host do while windows run: nvidia-smi or NVML for clocks, temperature and
power; /proc for CPU load, steal time and memory. No torch."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Callable

from .cases import GpuInfo
from .records import TelemetrySample


def query_gpu() -> GpuInfo:
    """Name, driver and total memory of GPU 0 from nvidia-smi ('unknown' if unavailable)."""
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader,nounits",
                "-i",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        name, driver, total = [part.strip() for part in out.strip().splitlines()[0].split(",")]
        return GpuInfo(name=name, driver=driver, memory_total_mib=int(float(total)))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return GpuInfo(name="unknown", driver="unknown", memory_total_mib=None)


def parse_cpu_jiffies(proc_stat: str) -> tuple[int, int, int] | None:
    """(busy, steal, total) jiffies of all CPUs from /proc/stat's aggregate `cpu` line.

    Fields: user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is
    already inside user, so it is not added again. Steal is time the hypervisor ran someone
    else on our virtual CPUs: a launch-bound worker slows down by that much.
    """
    for line in proc_stat.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu" and len(parts) >= 9:
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, parts[1:9])
            busy = user + nice + system + irq + softirq
            return busy, steal, busy + idle + iowait + steal
    return None


def parse_kib_field(text: str, key: str) -> float | None:
    """A `Key:   1234 kB` line of /proc/meminfo, /proc/self/status or smaps_rollup, in MiB."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            parts = value.split()
            if parts and parts[-1] == "kB":
                return int(parts[0]) / 1024
    return None


def parse_last_cpu(proc_pid_stat: str) -> int | None:
    """Field 39 of /proc/<pid>/stat: the CPU the task last ran on. The command name (field
    2) may contain spaces, so count from the closing parenthesis."""
    rest = proc_pid_stat.rpartition(")")[2].split()
    try:
        return int(rest[36])  # rest[0] is field 3
    except (IndexError, ValueError):
        return None


def parse_smi_telemetry(line: str) -> dict[str, float]:
    """One `nvidia-smi --query-gpu=<SMI_TELEMETRY fields> --format=csv,noheader,nounits`
    line; fields the GPU does not report ([N/A]) are left out."""
    out = {}
    for (key, _), cell in zip(SMI_TELEMETRY, line.strip().split(","), strict=False):
        try:
            out[key] = float(cell.strip())
        except ValueError:
            continue
    return out


# TelemetrySample field <- nvidia-smi query field, for machines without nvidia-ml-py.
SMI_TELEMETRY = (
    ("sm_clock_mhz", "clocks.sm"),
    ("mem_clock_mhz", "clocks.mem"),
    ("temp_c", "temperature.gpu"),
    ("power_w", "power.draw"),
    ("gpu_util_pct", "utilization.gpu"),
)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def read_host_counters() -> dict[str, float | int]:
    """CPU jiffies and MemAvailable of the whole machine (Linux; empty elsewhere)."""
    out: dict[str, float | int] = {}
    jiffies = parse_cpu_jiffies(_read_text("/proc/stat") or "")
    if jiffies is not None:
        out["cpu_busy_jiffies"], out["cpu_steal_jiffies"], out["cpu_total_jiffies"] = jiffies
    available = parse_kib_field(_read_text("/proc/meminfo") or "", "MemAvailable")
    if available is not None:
        out["mem_available_mib"] = available
    return out


def nvml_reader(index: int = 0) -> Callable[[], dict[str, float]] | None:
    """A function reading GPU `index` through NVML (the nvidia-ml-py package), or None."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:  # not installed, or no driver: fall back
        return None
    # Renamed from "throttle" to "event" reasons in newer NVML; either is the same bit mask.
    reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
        pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None
    )
    queries: dict[str, Callable[[], float]] = {
        "sm_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
        "mem_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
        "temp_c": lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
        "power_w": lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
        "gpu_util_pct": lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu,
    }
    if reasons is not None:
        queries["clock_reasons"] = lambda: reasons(handle)

    def read() -> dict[str, float]:
        out = {}
        for key, query in queries.items():
            try:
                out[key] = query()
            except Exception:  # one unsupported query must not lose the others
                continue
        return out

    return read


def smi_reader(index: int = 0) -> Callable[[], dict[str, float]] | None:
    """A function reading GPU `index` through nvidia-smi (slower than NVML), or None."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    query = ",".join(field for _, field in SMI_TELEMETRY)
    command = [binary, f"--query-gpu={query}", "--format=csv,noheader,nounits", "-i", str(index)]

    def read() -> dict[str, float]:
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return {}
        return parse_smi_telemetry(out.stdout.splitlines()[0] if out.stdout else "")

    return read


def gpu_telemetry_reader() -> tuple[str, Callable[[], dict[str, float]] | None]:
    """The best available way to read the GPU's clocks: NVML, else nvidia-smi, else none."""
    for name, make in (("nvml", nvml_reader), ("nvidia-smi", smi_reader)):
        read = make()
        if read is not None:
            return name, read
    return "none", None


class TelemetryMonitor:
    """Samples the GPU and the host on a thread of the parent process while a case runs.

    The parent only waits on a queue meanwhile, so the sampling takes no CPU time from the
    workers' launch loops beyond one idle core's worth.
    """

    def __init__(self, read_gpu: Callable[[], dict[str, float]] | None, interval_s: float):
        self.read_gpu = read_gpu
        self.interval_s = interval_s
        self.samples: list[TelemetrySample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)

    def __enter__(self) -> TelemetryMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            self.samples.append(self._read())
            if self._stop.wait(self.interval_s):
                self.samples.append(self._read())
                return

    def _read(self) -> TelemetrySample:
        t = time.monotonic()
        gpu = {}
        if self.read_gpu is not None:
            with contextlib.suppress(Exception):
                gpu = self.read_gpu()
        return TelemetrySample(t=t, **gpu, **read_host_counters())


def query_compute_mode(index: int = 0) -> str | None:
    """The GPU's compute mode as nvidia-smi names it (Default, Exclusive_Process, ...)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=compute_mode", "--format=csv,noheader", "-i", str(index)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out else None
