"""The control plane never imports torch: it starts fast, stays small and survives model-code crashes."""

import subprocess
import sys


def test_the_api_worker_and_cli_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from service.main import create_app\n"
        "from service.worker.worker import Worker\n"
        "from service.cli import app\n"
        "create_app()\n"
        "heavy = {'torch', 'transformers', 'peft', 'deepspeed', 'accelerate'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
