"""The naive baseline, written the way a tutorial would: FastAPI, a PyTorch `nn.LSTM` run
eagerly, a dict of per-session `(h, c)` tensors, one forward per request. Same paths and
bodies as seqserve's v1 session API, so the benchmark drives both with the same load.

    OMP_NUM_THREADS=1 python scripts/naive_server.py --port 8002

(`scripts/bench.py` sets OMP_NUM_THREADS=1: with torch's default of one OpenMP thread a core,
FastAPI's thread-pool workers spin in OpenMP and a lone stream slows several-fold.)
"""

from __future__ import annotations

import argparse
import uuid

import torch
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from torch import nn

HIDDEN = 64


class Forecaster(nn.Module):
    def __init__(self, n_features: int = 1, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_features)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        out, state = self.lstm(x, state)
        return self.head(out), state


class StepRequest(BaseModel):
    inputs: list[list[float]]


def new_state() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(1, 1, HIDDEN), torch.zeros(1, 1, HIDDEN)


def create_app() -> FastAPI:
    app = FastAPI()
    torch.manual_seed(0)
    model = Forecaster().eval()
    sessions: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    steps: dict[str, int] = {}

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/v1/sessions", status_code=201)
    def create_session() -> dict[str, str]:
        session_id = str(uuid.uuid4())
        sessions[session_id] = new_state()
        steps[session_id] = 0
        return {"id": session_id}

    @app.post("/v1/sessions/{session_id}/steps")
    def step(session_id: str, request: StepRequest) -> dict[str, object]:
        if session_id not in sessions:
            raise HTTPException(status_code=404, detail="session not found")
        x = torch.tensor(request.inputs, dtype=torch.float32).unsqueeze(0)
        with torch.no_grad():
            y, sessions[session_id] = model(x, sessions[session_id])
        steps[session_id] += x.shape[1]
        return {"outputs": y[0].tolist(), "step": steps[session_id]}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads (torch's default, one a core, stalls on a shared machine)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    uvicorn.run(
        create_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
