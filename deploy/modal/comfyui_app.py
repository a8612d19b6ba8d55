"""Reference Modal app for comfy-serverless: ComfyUI as a Modal class.

Each job is one call of ``ComfyWorker.run``, which runs start to finish inside one
container: the workflow is submitted to the ComfyUI server of that container, followed
over its websocket (falling back to ``/history``), and every output comes back in the
call's result. That is what makes it safe with more than one container: ComfyUI's own
``/prompt`` and ``/history`` belong to one server, and a web endpoint in front of them
would send a job's requests to different containers.

Deploy:

    pip install "modal>=1.2"          # calls from JavaScript need the CBOR wire format of 1.2+
    modal deploy deploy/modal/comfyui_app.py

Add models to the volume (ComfyUI's folder layout):

    modal run deploy/modal/comfyui_app.py::add_model \\
        --url https://huggingface.co/.../sd_xl_base_1.0.safetensors \\
        --folder checkpoints --name sd_xl_base_1.0.safetensors

Settings are read from environment variables at deploy time (see SETTINGS below) and
baked into the image, so the container sees the same values.

The SDK calls it with ``createModal({ app: 'comfyui', gpu: 'L40S' })`` (gRPC, through
Modal's JavaScript SDK), or over HTTP with ``createModalEndpoint({ url })`` against the
optional ``api`` web endpoint below.
"""

from __future__ import annotations

import asyncio
import base64
import json
import mimetypes
import os
import pathlib
import subprocess
import time
import uuid
from typing import Any

import modal

# ---------------------------------------------------------------------------------------
# Settings (deploy-time environment variables; baked into the image for the container)
# ---------------------------------------------------------------------------------------

SETTINGS = {
    # App name, as createModal({ app }) names it.
    "COMFY_APP_NAME": os.environ.get("COMFY_APP_NAME", "comfyui"),
    # Modal GPU name: T4, L4, A10, L40S, A100, A100-80GB, H100, H200, B200.
    "COMFY_GPU": os.environ.get("COMFY_GPU", "L40S"),
    # ComfyUI git tag or commit to install. Pin it: a moving branch changes nodes under you.
    "COMFYUI_VERSION": os.environ.get("COMFYUI_VERSION", "v0.3.66"),
    # Extra custom nodes: space-separated git URLs, each optionally "@<ref>".
    "COMFY_CUSTOM_NODES": os.environ.get("COMFY_CUSTOM_NODES", ""),
    # Name of the Modal Volume holding models.
    "COMFY_MODELS_VOLUME": os.environ.get("COMFY_MODELS_VOLUME", "comfyui-models"),
    # Modal's timeout for one job (seconds, 1 s .. 24 h). Past it, Modal stops the call.
    "COMFY_TIMEOUT_SECONDS": os.environ.get("COMFY_TIMEOUT_SECONDS", "3600"),
    # Autoscaler defaults; createModalTarget overrides them at run time until the next deploy.
    "COMFY_MIN_CONTAINERS": os.environ.get("COMFY_MIN_CONTAINERS", "0"),
    "COMFY_MAX_CONTAINERS": os.environ.get("COMFY_MAX_CONTAINERS", "10"),
    "COMFY_BUFFER_CONTAINERS": os.environ.get("COMFY_BUFFER_CONTAINERS", "0"),
    "COMFY_SCALEDOWN_SECONDS": os.environ.get("COMFY_SCALEDOWN_SECONDS", "60"),
    # "1": start ComfyUI before Modal's memory snapshot (much faster cold starts); "0": off.
    "COMFY_MEMORY_SNAPSHOT": os.environ.get("COMFY_MEMORY_SNAPSHOT", "1"),
    # "1": the web endpoint requires Modal-Key/Modal-Secret (proxy auth); "0": open.
    "COMFY_PROXY_AUTH": os.environ.get("COMFY_PROXY_AUTH", "1"),
    # "1": deploy the optional HTTP endpoint `api`; "0": SDK calls only.
    "COMFY_WEB_ENDPOINT": os.environ.get("COMFY_WEB_ENDPOINT", "1"),
}

APP_NAME = SETTINGS["COMFY_APP_NAME"]
GPU = SETTINGS["COMFY_GPU"]
TIMEOUT_SECONDS = int(SETTINGS["COMFY_TIMEOUT_SECONDS"])
MEMORY_SNAPSHOT = SETTINGS["COMFY_MEMORY_SNAPSHOT"] == "1"
PROXY_AUTH = SETTINGS["COMFY_PROXY_AUTH"] == "1"
WEB_ENDPOINT = SETTINGS["COMFY_WEB_ENDPOINT"] == "1"

COMFY_DIR = "/root/ComfyUI"
MODELS_DIR = "/models"
PORT = 8188
BASE_URL = f"http://127.0.0.1:{PORT}"
SNAPSHOT_NODE = "comfy_serverless_snapshot"

# ComfyUI's model folders (the names loader nodes resolve against). Custom nodes may add
# more: put them in COMFY_EXTRA_MODEL_FOLDERS (space-separated) at deploy time.
MODEL_FOLDERS = [
    "checkpoints",
    "loras",
    "vae",
    "text_encoders",
    "clip",
    "diffusion_models",
    "unet",
    "controlnet",
    "upscale_models",
    "clip_vision",
    "style_models",
    "gligen",
    "hypernetworks",
    "photomaker",
    "embeddings",
    "vae_approx",
    "model_patches",
    *os.environ.get("COMFY_EXTRA_MODEL_FOLDERS", "").split(),
]

# Output keys of a node's UI dict and the kind each stands for.
OUTPUT_KEYS = {
    "images": "image",
    "gifs": "gif",
    "video": "video",
    "videos": "video",
    "audio": "audio",
    "audios": "audio",
    "animated": "image",
    "files": "file",
    "3d": "file",
    "meshes": "file",
}

# ---------------------------------------------------------------------------------------
# Image
# ---------------------------------------------------------------------------------------


def _write_support_files() -> None:
    """Build step: ComfyUI's model paths pointing at the volume, and the snapshot helper node.

    With memory snapshots, ComfyUI starts (imports torch, loads custom nodes) before the
    snapshot, when no GPU is attached, so it starts with ``--cpu``; after each restore the
    helper's route moves ComfyUI's device state to the GPU. ``attach_gpu`` checks the
    result and restarts ComfyUI normally if it did not work, so a ComfyUI version whose
    internals differ costs a slower cold start, never a CPU-bound job.
    """
    import textwrap

    folders = "\n".join(f"  {folder}: {folder}/" for folder in MODEL_FOLDERS)
    pathlib.Path(f"{COMFY_DIR}/extra_model_paths.yaml").write_text(
        f"comfy_serverless:\n  base_path: {MODELS_DIR}/\n  is_default: true\n{folders}\n"
    )
    node_dir = pathlib.Path(f"{COMFY_DIR}/custom_nodes/{SNAPSHOT_NODE}")
    node_dir.mkdir(parents=True, exist_ok=True)
    # After restore, a route puts the GPU back and re-initialises ComfyUI's device state.
    (node_dir / "__init__.py").write_text(
        textwrap.dedent(
            """
            NODE_CLASS_MAPPINGS = {}
            NODE_DISPLAY_NAME_MAPPINGS = {}
            try:
                from aiohttp import web
                from server import PromptServer

                @PromptServer.instance.routes.post("/comfy-serverless/attach-gpu")
                async def attach_gpu(request):
                    # ComfyUI was started with --cpu for the snapshot (no GPU is attached
                    # then); switch its device state to the GPU now present.
                    try:
                        import torch
                        import comfy.model_management as mm
                        from comfy.cli_args import args
                        if not torch.cuda.is_available():
                            return web.json_response({"ok": False, "reason": "no CUDA device"}, status=500)
                        args.cpu = False
                        mm.cpu_state = mm.CPUState.GPU
                        device = mm.get_torch_device()
                        torch.zeros(1, device=device)
                        mm.total_vram = mm.get_total_memory(device) / (1024 * 1024)
                        mm.vram_state = mm.VRAMState.NORMAL_VRAM
                        mm.set_vram_to = mm.VRAMState.NORMAL_VRAM
                        return web.json_response({"ok": True, "device": str(device)})
                    except Exception as error:
                        return web.json_response({"ok": False, "reason": str(error)}, status=500)
            except Exception as error:  # never break ComfyUI's start-up
                print(f"[comfy-serverless] snapshot helper disabled: {error}")
            """
        )
    )


def _custom_node_commands() -> list[str]:
    commands = []
    for spec in SETTINGS["COMFY_CUSTOM_NODES"].split():
        url, _, ref = spec.partition("@")
        name = url.rstrip("/").split("/")[-1].removesuffix(".git")
        target = f"{COMFY_DIR}/custom_nodes/{name}"
        commands.append(f"git clone {url} {target}")
        if ref:
            commands.append(f"git -C {target} checkout {ref}")
        commands.append(f"if [ -f {target}/requirements.txt ]; then pip install -r {target}/requirements.txt; fi")
    return commands


image = (
    modal.Image.debian_slim(python_version="3.12")
    .apt_install("git", "ffmpeg", "libgl1", "libglib2.0-0")
    .pip_install("aiohttp>=3.9", "requests>=2.31", "fastapi[standard]>=0.115")
    .run_commands(
        f"git clone https://github.com/comfyanonymous/ComfyUI {COMFY_DIR}",
        f"git -C {COMFY_DIR} checkout {SETTINGS['COMFYUI_VERSION']}",
        f"pip install -r {COMFY_DIR}/requirements.txt",
    )
)
_node_commands = _custom_node_commands()
if _node_commands:
    image = image.run_commands(*_node_commands)
image = image.env(SETTINGS).run_function(_write_support_files)

web_image = modal.Image.debian_slim(python_version="3.12").pip_install("fastapi[standard]>=0.115").env(SETTINGS)

models = modal.Volume.from_name(SETTINGS["COMFY_MODELS_VOLUME"], create_if_missing=True)
app = modal.App(APP_NAME)

# ---------------------------------------------------------------------------------------
# Helpers (run inside the container)
# ---------------------------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def _error(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, **{key: value for key, value in extra.items() if value is not None}}


def _decode_bytes(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        payload = data.split(",", 1)[1] if data.startswith("data:") else data
        return base64.b64decode(payload, validate=False)
    raise ValueError("image data must be bytes or a base64 string")


def _safe_name(name: Any) -> str:
    if not isinstance(name, str) or not name or name.startswith(("/", "\\")) or ".." in name.split("/"):
        raise ValueError(f"unsafe input image name: {name!r}")
    if "\\" in name or "\x00" in name or ":" in name:
        raise ValueError(f"unsafe input image name: {name!r}")
    return name


def _kind_for(key: str, filename: str) -> str:
    kind = OUTPUT_KEYS.get(key, "file")
    mime = mimetypes.guess_type(filename)[0] or ""
    if kind in ("image", "file"):
        if mime == "image/gif":
            return "gif"
        if mime.startswith("video/"):
            return "video"
        if mime.startswith("audio/"):
            return "audio"
        if mime.startswith("image/"):
            return "image"
    return kind


def _mime_for(filename: str) -> str:
    guessed = mimetypes.guess_type(filename)[0]
    if guessed:
        return guessed
    extension = filename.rsplit(".", 1)[-1].lower()
    return {"webp": "image/webp", "flac": "audio/flac", "glb": "model/gltf-binary"}.get(
        extension, "application/octet-stream"
    )


def _execution_error(data: dict[str, Any]) -> dict[str, Any]:
    return _error(
        "execution",
        str(data.get("exception_message") or "node raised an exception").strip(),
        nodeId=str(data.get("node_id")) if data.get("node_id") is not None else None,
        nodeType=data.get("node_type"),
        exceptionType=data.get("exception_type"),
        traceback=data.get("traceback"),
    )


# ---------------------------------------------------------------------------------------
# The worker class
# ---------------------------------------------------------------------------------------


@app.cls(
    gpu=GPU,
    image=image,
    volumes={MODELS_DIR: models},
    timeout=TIMEOUT_SECONDS,
    startup_timeout=900,
    min_containers=int(SETTINGS["COMFY_MIN_CONTAINERS"]),
    max_containers=int(SETTINGS["COMFY_MAX_CONTAINERS"]),
    buffer_containers=int(SETTINGS["COMFY_BUFFER_CONTAINERS"]),
    scaledown_window=int(SETTINGS["COMFY_SCALEDOWN_SECONDS"]),
    enable_memory_snapshot=MEMORY_SNAPSHOT,
)
class ComfyWorker:
    """One ComfyUI server per container; one job at a time (no input concurrency)."""

    @modal.enter(snap=True)
    def start_comfy(self) -> None:
        """Starts ComfyUI. With memory snapshots this runs once, without a GPU, before the snapshot."""
        self.container_started = time.time()
        self.cold_start_ms: int | None = None
        self.process: subprocess.Popen | None = None
        for folder in MODEL_FOLDERS:
            pathlib.Path(MODELS_DIR, folder).mkdir(parents=True, exist_ok=True)
        self._launch(snapshot_phase=MEMORY_SNAPSHOT)

    @modal.enter(snap=False)
    def attach_gpu(self) -> None:
        """After a restore (or a plain start): make sure ComfyUI runs on the GPU; restart it if not."""
        import requests

        restored_at = time.time()
        if MEMORY_SNAPSHOT:
            ok = False
            try:
                answer = requests.post(f"{BASE_URL}/comfy-serverless/attach-gpu", timeout=60)
                stats = requests.get(f"{BASE_URL}/system_stats", timeout=30).json()
                devices = stats.get("devices") or []
                ok = answer.status_code == 200 and bool(devices) and devices[0].get("type") == "cuda"
            except Exception as error:  # noqa: BLE001 - any failure means: start afresh
                print(f"[comfy-serverless] GPU attach after restore failed: {error}")
            if not ok:
                # Correctness over speed: a ComfyUI that cannot see the GPU is restarted normally.
                print("[comfy-serverless] restarting ComfyUI without the snapshot state")
                self._stop()
                self._launch(snapshot_phase=False)
        # The first job on this container reports how long the container took to be ready.
        self.cold_start_ms = int((time.time() - min(self.container_started, restored_at)) * 1000)

    @modal.exit()
    def stop_comfy(self) -> None:
        self._stop()

    def _launch(self, snapshot_phase: bool) -> None:
        import requests

        self.process = subprocess.Popen(
            [
                "python",
                "main.py",
                "--listen",
                "127.0.0.1",
                "--port",
                str(PORT),
                "--extra-model-paths-config",
                f"{COMFY_DIR}/extra_model_paths.yaml",
                "--disable-auto-launch",
                *(["--cpu"] if snapshot_phase else []),
            ],
            cwd=COMFY_DIR,
        )
        deadline = time.time() + 600
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited during start-up with code {self.process.returncode}")
            try:
                if requests.get(f"{BASE_URL}/system_stats", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise RuntimeError("ComfyUI did not answer /system_stats within 600 s")

    def _stop(self) -> None:
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.process = None

    # -- preflight -----------------------------------------------------------------------

    @modal.method()
    def object_info(self) -> dict[str, Any]:
        """ComfyUI's /object_info of this container: every node type and its inputs (for preflight)."""
        import requests

        return requests.get(f"{BASE_URL}/object_info", timeout=120).json()

    @modal.method()
    def list_models(self) -> dict[str, list[str]]:
        """Model files by folder, as ComfyUI's loaders see them (volume and image)."""
        import requests

        listed: dict[str, list[str]] = {}
        for folder in MODEL_FOLDERS:
            try:
                answer = requests.get(f"{BASE_URL}/models/{folder}", timeout=30)
                if answer.status_code == 200:
                    listed[folder] = [name for name in answer.json() if isinstance(name, str)]
            except requests.RequestException:
                continue
        return listed

    # -- one job -------------------------------------------------------------------------

    @modal.method()
    async def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """Runs one workflow start to finish on this container's ComfyUI.

        Takes ``{ jobId, workflow, images: [{ name, data }], deadlineAt?, submittedAt? }`` and
        returns ``{ outputs: [{ nodeId, kind, filename, mime, data | text }], timing, error? }``.
        ComfyUI's own failures are returned in ``error`` (``validation`` with its node_errors,
        ``execution`` with the failing node, ``interrupted``, ``timeout``, ``request``,
        ``server``); only unexpected failures raise.
        """
        import aiohttp

        started_at = _now_ms()
        cold_start_ms, self.cold_start_ms = self.cold_start_ms, None
        worker = {"containerId": os.environ.get("MODAL_TASK_ID"), "gpu": GPU}

        def timing(execution_started: int | None = None) -> dict[str, Any]:
            now = _now_ms()
            result: dict[str, Any] = {
                "startedAt": started_at,
                "executionMs": now - (execution_started or now),
                "totalMs": now - started_at,
            }
            submitted = request.get("submittedAt") if isinstance(request, dict) else None
            if isinstance(submitted, (int, float)):
                result["queuedMs"] = max(0, started_at - int(submitted))
            if cold_start_ms is not None:
                result["coldStartMs"] = cold_start_ms
            return result

        def failed(error: dict[str, Any], execution_started: int | None = None) -> dict[str, Any]:
            return {"jobId": job_id, "outputs": [], "timing": timing(execution_started), "worker": worker, "error": error}

        job_id = request.get("jobId") if isinstance(request, dict) else None
        workflow = request.get("workflow") if isinstance(request, dict) else None
        if not isinstance(workflow, dict) or not workflow:
            return failed(_error("request", "The request has no workflow (an API-format object)."))
        if "nodes" in workflow and "links" in workflow:
            return failed(_error("request", "This is a UI-format export; export with 'Save (API format)'."))
        deadline_at = request.get("deadlineAt")
        deadline = deadline_at / 1000 if isinstance(deadline_at, (int, float)) else None
        if deadline is not None and time.time() >= deadline:
            return failed(_error("timeout", "The deadline passed before the job started.", executionStarted=False))

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
        async with aiohttp.ClientSession(base_url=BASE_URL, timeout=timeout) as session:
            # 1. Input images, under the names the workflow's LoadImage nodes use.
            try:
                for item in request.get("images") or []:
                    name = _safe_name(item.get("name"))
                    subfolder, _, basename = name.rpartition("/")
                    form = aiohttp.FormData()
                    form.add_field("image", _decode_bytes(item.get("data")), filename=basename)
                    form.add_field("overwrite", "true")
                    form.add_field("type", "input")
                    if subfolder:
                        form.add_field("subfolder", subfolder)
                    async with session.post("/upload/image", data=form) as answer:
                        if answer.status != 200:
                            return failed(_error("server", f"Uploading {name} failed: HTTP {answer.status}"))
            except ValueError as error:
                return failed(_error("request", str(error)))

            # 2. Listen before submitting: execution_error goes only to the submitting client.
            client_id = uuid.uuid4().hex
            socket = None
            try:
                socket = await session.ws_connect(f"/ws?clientId={client_id}", heartbeat=20)
            except aiohttp.ClientError as error:
                print(f"[comfy-serverless] websocket unavailable, polling /history: {error}")

            prompt_id: str | None = None
            try:
                async with session.post("/prompt", json={"prompt": workflow, "client_id": client_id}) as answer:
                    body = await answer.json(content_type=None)
                    if answer.status == 400 or (isinstance(body, dict) and body.get("node_errors")):
                        top = (body or {}).get("error") or {}
                        return failed(
                            _error(
                                "validation",
                                str(top.get("message") or "ComfyUI refused the prompt"),
                                comfyType=top.get("type"),
                                details=top.get("details"),
                                nodeErrors=(body or {}).get("node_errors") or {},
                            )
                        )
                    if answer.status != 200:
                        return failed(_error("server", f"ComfyUI answered /prompt with HTTP {answer.status}"))
                prompt_id = body["prompt_id"]
                execution_started = _now_ms()

                # 3. Wait for the end: websocket first, /history when it stalls or drops.
                outcome = await self._wait(session, socket, client_id, prompt_id, deadline)
            except asyncio.CancelledError:
                # Modal cancelled the call: stop ComfyUI's work so the container is free again.
                await self._interrupt(session, prompt_id)
                raise
            finally:
                if socket is not None:
                    await socket.close()

            if outcome.get("timeout"):
                await self._interrupt(session, prompt_id)
                return failed(_error("timeout", "The job passed its deadline while running.", executionStarted=True), execution_started)
            if outcome.get("interrupted"):
                return failed(_error("interrupted", "ComfyUI interrupted the job."), execution_started)
            if outcome.get("error"):
                return failed(outcome["error"], execution_started)

            # 4. Outputs: every file of every output node, and text outputs.
            entry = outcome["history"]
            outputs: list[dict[str, Any]] = []
            for node_id, ui in (entry.get("outputs") or {}).items():
                if not isinstance(ui, dict):
                    continue
                for key, items in ui.items():
                    if key == "text":
                        for index, text in enumerate(items if isinstance(items, list) else [items]):
                            outputs.append(
                                {
                                    "nodeId": str(node_id),
                                    "kind": "text",
                                    "filename": f"{node_id}_{index}.txt",
                                    "mime": "text/plain",
                                    "text": str(text),
                                }
                            )
                        continue
                    if not isinstance(items, list):
                        continue
                    for item in items:
                        if not isinstance(item, dict) or "filename" not in item:
                            continue
                        params = {
                            "filename": item["filename"],
                            "subfolder": item.get("subfolder", ""),
                            "type": item.get("type", "output"),
                        }
                        async with session.get("/view", params=params) as answer:
                            if answer.status != 200:
                                continue
                            data = await answer.read()
                        outputs.append(
                            {
                                "nodeId": str(node_id),
                                "kind": _kind_for(key, item["filename"]),
                                "filename": item["filename"],
                                "mime": _mime_for(item["filename"]),
                                "data": data,
                            }
                        )
                        self._remove_file(params)
            # Keep a long-lived container's history small.
            async with session.post("/history", json={"delete": [prompt_id]}):
                pass
            return {"jobId": job_id, "outputs": outputs, "timing": timing(execution_started), "worker": worker}

    async def _wait(
        self, session: Any, socket: Any, client_id: str, prompt_id: str, deadline: float | None
    ) -> dict[str, Any]:
        """Follows the prompt until it ends; returns history, error, interrupted or timeout."""
        import aiohttp

        stall_seconds = 30.0
        reconnects = 0
        finished_seen = False
        while True:
            if deadline is not None and time.time() >= deadline:
                return {"timeout": True}
            if finished_seen:
                await asyncio.sleep(0.2)  # the websocket said done; /history is about to have it
            elif socket is not None and not socket.closed:
                wait = stall_seconds if deadline is None else max(0.1, min(stall_seconds, deadline - time.time()))
                try:
                    message = await socket.receive(timeout=wait)
                except asyncio.TimeoutError:
                    message = None  # stalled: check /history below
                if message is not None and message.type == aiohttp.WSMsgType.TEXT:
                    event = json.loads(message.data)
                    data = event.get("data") or {}
                    if data.get("prompt_id") not in (None, prompt_id):
                        continue
                    kind = event.get("type")
                    if kind == "execution_error":
                        return {"error": _execution_error(data)}
                    if kind == "execution_interrupted":
                        return {"interrupted": True}
                    finished = kind == "execution_success" or (
                        kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id
                    )
                    if not finished:
                        continue
                    finished_seen = True
                elif message is not None and message.type == aiohttp.WSMsgType.BINARY:
                    continue  # previews are not returned by a call
                elif message is not None and message.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    socket = None
                    if reconnects < 3:
                        reconnects += 1
                        try:
                            # The same client id: ComfyUI sends a prompt's events to its submitter.
                            socket = await session.ws_connect(f"/ws?clientId={client_id}", heartbeat=20)
                        except aiohttp.ClientError:
                            socket = None
            else:
                await asyncio.sleep(1.0)
            async with session.get(f"/history/{prompt_id}") as answer:
                history = await answer.json(content_type=None) if answer.status == 200 else {}
            entry = (history or {}).get(prompt_id)
            if not entry:
                continue  # still queued or running
            status = entry.get("status") or {}
            if status.get("status_str") == "error":
                for name, data in status.get("messages") or []:
                    if name == "execution_error":
                        return {"error": _execution_error(data)}
                    if name == "execution_interrupted":
                        return {"interrupted": True}
                return {"error": _error("execution", "ComfyUI reported the prompt as failed")}
            if status.get("completed", True):
                return {"history": entry}

    async def _interrupt(self, session: Any, prompt_id: str | None) -> None:
        """Stops the job whether it is queued or running (interrupt is global: this container runs only it)."""
        try:
            if prompt_id:
                async with session.post("/queue", json={"delete": [prompt_id]}):
                    pass
            async with session.post("/interrupt", json={}):
                pass
        except Exception as error:  # noqa: BLE001 - best effort while being cancelled
            print(f"[comfy-serverless] interrupt failed: {error}")

    def _remove_file(self, params: dict[str, str]) -> None:
        """Deletes an output once read, so that a long-lived container's disk does not fill."""
        base = pathlib.Path(COMFY_DIR, "output" if params["type"] == "output" else "temp").resolve()
        path = (base / params["subfolder"] / params["filename"]).resolve()
        if base in path.parents and path.is_file():
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------
# Models on the volume
# ---------------------------------------------------------------------------------------


# A Hugging Face token in the caller's environment reaches the download as a secret.
_download_secrets = [modal.Secret.from_dict({"HF_TOKEN": os.environ["HF_TOKEN"]})] if os.environ.get("HF_TOKEN") else []


@app.function(
    image=web_image.pip_install("requests>=2.31"),
    volumes={MODELS_DIR: models},
    secrets=_download_secrets,
    timeout=3 * 3600,
)
def add_model(url: str, folder: str, name: str) -> str:
    """Downloads a model into the volume under ComfyUI's folder layout (``<folder>/<name>``)."""
    import requests

    if folder not in MODEL_FOLDERS:
        raise ValueError(f"unknown model folder {folder!r}; use one of {', '.join(MODEL_FOLDERS)}")
    if not name or name.startswith("/") or ".." in name.split("/") or "\\" in name:
        raise ValueError(f"unsafe model name {name!r}")
    target = pathlib.Path(MODELS_DIR, folder, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    headers = {}
    token = os.environ.get("HF_TOKEN")
    if token and "huggingface.co" in url:
        headers["Authorization"] = f"Bearer {token}"
    with requests.get(url, headers=headers, stream=True, timeout=60) as answer:
        answer.raise_for_status()
        with open(partial, "wb") as file:
            for chunk in answer.iter_content(chunk_size=16 * 1024 * 1024):
                file.write(chunk)
    partial.rename(target)
    models.commit()
    return f"{folder}/{name}: {target.stat().st_size} bytes"


# ---------------------------------------------------------------------------------------
# Optional HTTP endpoint (stateless: it calls the class, so any number of containers works)
# ---------------------------------------------------------------------------------------


def _to_json(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    return value


if WEB_ENDPOINT:

    @app.function(image=web_image, timeout=TIMEOUT_SECONDS + 300)
    @modal.concurrent(max_inputs=100)
    @modal.asgi_app(requires_proxy_auth=PROXY_AUTH)
    def api():
        """``POST /jobs``, ``GET /jobs/{callId}?waitMs=``, ``DELETE /jobs/{callId}``, ``GET /health``,
        ``GET /object_info`` and a synchronous ``POST /run``; images and outputs in base64."""
        from fastapi import FastAPI, HTTPException
        from fastapi.responses import JSONResponse

        web = FastAPI(title="comfy-serverless ComfyUI endpoint")
        worker = ComfyWorker()

        @web.post("/jobs")
        async def submit(body: dict) -> dict:
            call = await worker.run.spawn.aio(body)
            return {"callId": call.object_id}

        @web.get("/jobs/{call_id}")
        async def result(call_id: str, waitMs: int = 0) -> JSONResponse:  # noqa: N803 - wire name
            # Stay under Modal's 150 s request limit; the SDK polls again.
            wait_seconds = max(0.0, min(waitMs, 120_000) / 1000)
            try:
                call = modal.FunctionCall.from_id(call_id)
                value = await call.get.aio(timeout=wait_seconds)
            except modal.exception.FunctionTimeoutError as error:
                return JSONResponse({"status": "failed", "error": {"type": "timeout", "message": str(error)}})
            except (TimeoutError, modal.exception.TimeoutError):
                return JSONResponse({"status": "pending"})
            except modal.exception.InputCancellation:
                return JSONResponse({"status": "cancelled"})
            except (modal.exception.NotFoundError, modal.exception.OutputExpiredError) as error:
                return JSONResponse({"error": {"type": "expired", "message": str(error)}}, status_code=404)
            except modal.exception.InternalFailure as error:
                return JSONResponse({"status": "failed", "error": {"type": "internal", "message": str(error)}})
            except Exception as error:  # noqa: BLE001 - a remote exception of the call
                text = f"{type(error).__name__}: {error}"
                if "cancel" in text.lower() or "terminated" in text.lower():
                    return JSONResponse({"status": "cancelled"})
                return JSONResponse({"status": "failed", "error": {"type": "remote", "message": text}})
            return JSONResponse({"status": "done", "result": _to_json(value)})

        @web.delete("/jobs/{call_id}")
        async def cancel(call_id: str) -> dict:
            try:
                await modal.FunctionCall.from_id(call_id).cancel.aio()
            except modal.exception.NotFoundError as error:
                raise HTTPException(status_code=404, detail=str(error)) from error
            return {"cancelled": True}

        @web.get("/health")
        async def health() -> dict:
            try:
                stats = await worker.run.get_current_stats.aio()
                return {"backlog": stats.backlog, "runners": stats.num_total_runners}
            except Exception as error:  # noqa: BLE001 - report rather than fail the health check
                return {"backlog": None, "runners": None, "message": str(error)}

        @web.get("/object_info")
        async def object_info() -> dict:
            return await worker.object_info.remote.aio()

        @web.post("/run")
        async def run_now(body: dict) -> JSONResponse:
            # For curl: waits for the result. Past 150 s Modal answers 303 to a result URL; follow it.
            return JSONResponse(_to_json(await worker.run.remote.aio(body)))

        return web
