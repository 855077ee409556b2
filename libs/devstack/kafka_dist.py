"""Apache Kafka's broker jars, fetched from Maven Central into the repo's tools folder.

``infra/kafka/pom.xml`` pins the broker (``org.apache.kafka:kafka_2.13``) and its logging
binding; ``mvn dependency:copy-dependencies`` copies them and every transitive dependency into
``.tools/kafka-<version>/libs``. The copy is made once per pom (a stamp holds its hash) and kept
across runs; Maven's own cache lives in ``.tools/m2`` so nothing is written outside the repo.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_INFRA = REPO_ROOT / "infra" / "kafka"
POM = KAFKA_INFRA / "pom.xml"
LOG4J_CONFIG = KAFKA_INFRA / "log4j2.properties"
TOOLS = REPO_ROOT / ".tools"


class KafkaDistributionError(RuntimeError):
    """The broker's jars or a Java runtime could not be had."""


@dataclass(frozen=True)
class KafkaDistribution:
    version: str
    libs: Path
    java: Path

    @property
    def classpath(self) -> str:
        return f"{self.libs}/*"


def kafka_version(pom: Path = POM) -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text(encoding="utf-8"))
    if match is None:
        msg = f"{pom} names no kafka.version"
        raise KafkaDistributionError(msg)
    return match.group(1)


def find_java() -> Path:
    """The JDK's ``java``: ``JAVA_HOME`` first, then the PATH (Java 17 or newer)."""
    if home := os.environ.get("JAVA_HOME"):
        candidate = Path(home) / "bin" / "java"
        if candidate.exists():
            return candidate
    if found := shutil.which("java"):
        return Path(found)
    msg = "no Java runtime for the Kafka broker: install Java 17+ (apt-get install openjdk-17-jre-headless)"
    raise KafkaDistributionError(msg)


def ensure_kafka(tools: Path = TOOLS, pom: Path = POM) -> KafkaDistribution:
    """The pinned broker's jars, fetched by Maven on first use (a file lock serialises fetchers)."""
    version = kafka_version(pom)
    target = tools / f"kafka-{version}"
    libs = target / "libs"
    stamp = libs / ".pom-sha256"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (stamp.exists() and stamp.read_text(encoding="utf-8").strip() == digest):
            _fetch(pom, libs, tools / "m2")
            stamp.write_text(digest, encoding="utf-8")
    return KafkaDistribution(version=version, libs=libs, java=find_java())


def _fetch(pom: Path, libs: Path, local_repo: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        msg = "no Maven to fetch the Kafka broker: install it (apt-get install maven)"
        raise KafkaDistributionError(msg)
    shutil.rmtree(libs, ignore_errors=True)
    command = [
        mvn,
        "--batch-mode",
        "--quiet",
        "--file",
        str(pom),
        f"-Dmaven.repo.local={local_repo}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        msg = f"fetching the Kafka broker with Maven failed ({result.returncode}):\n{result.stdout[-4000:]}"
        raise KafkaDistributionError(msg)
    if not any(libs.glob("kafka_2.13-*.jar")):
        msg = f"Maven finished but {libs} holds no kafka_2.13 jar"
        raise KafkaDistributionError(msg)


if __name__ == "__main__":  # `make kafka`: fetch ahead of the first test
    dist = ensure_kafka()
    print(f"Apache Kafka {dist.version}: {dist.libs} (java: {dist.java})")
