"""The peer: a bare Starlette endpoint doing the same predict (no auth, validation or metrics).

Run by bench/serving/run.py as ``uvicorn bare_app:app --loop uvloop --http httptools``; BENCH_MODEL is the
joblib file.
"""

import os
import warnings

import joblib
import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

warnings.filterwarnings("ignore", message="X does not have valid feature names")
model = joblib.load(os.environ["BENCH_MODEL"])


async def score(request):
    data = orjson.loads(await request.body())["data"]
    predictions = model.predict(np.asarray(data, dtype=float))
    return Response(orjson.dumps({"predictions": predictions.tolist()}), media_type="application/json")


app = Starlette(routes=[Route("/score", score, methods=["POST"])])
