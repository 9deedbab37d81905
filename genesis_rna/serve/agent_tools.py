"""Agent wrappers: each capability of a running ``genesis-rna serve`` as a tool an LLM agent can call.

The tools are derived from the server's own OpenAPI schema (``/openapi.json``), not written by hand, so they
cannot drift from the API: one tool per operation, named by its ``operationId`` (``fold``, ``embed``,
``attention``, ``score_mutations``, ``design``, ``health``, ``models``, ...), described by its summary, with the
request body's JSON schema (``$ref``s inlined) as ``parameters``. That is the shape OpenAI / Anthropic style
function calling expects: ``{"name", "description", "parameters"}``.

:meth:`APITools.call` sends the arguments to the endpoint and returns the JSON answer; an error the agent can
fix (4xx, or 501/503) comes back as ``{"error": {"status", "detail"}}`` rather than an exception, so the agent
can read the one-line message and retry. Standard library only (urllib), so an agent process needs no extras.

>>> tools = APITools("http://127.0.0.1:8000")            # doctest: +SKIP
>>> [t["name"] for t in tools.tools()]                    # doctest: +SKIP
['health', 'models', 'embed', 'embed_npy', 'attention', 'fold', 'score_mutations', 'design']
>>> tools.call("fold", {"sequence": "GGGGAAAACCCC"})["structure"]   # doctest: +SKIP
'((((....))))'
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from typing import Any

__all__ = ["APITools", "tools_from_openapi"]

_JSON_ONLY = {"embed_npy"}  # binary downloads are no use to a language model


def _resolve(node: Any, components: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Inline ``#/components/schemas/...`` references (schemas here are not recursive; a cycle is cut)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name in seen:
                return {"type": "object"}
            return _resolve(copy.deepcopy(components.get(name, {})), components, (*seen, name))
        return {k: _resolve(v, components, seen) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_resolve(v, components, seen) for v in node]
    return node


def tools_from_openapi(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{name, description, parameters, method, path}]`` for every JSON operation of an OpenAPI schema."""
    components = schema.get("components", {}).get("schemas", {})
    out = []
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            name = op.get("operationId")
            if not name or name in _JSON_ONLY:
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            params = _resolve(body, components) if body else {"type": "object", "properties": {}}
            params.setdefault("type", "object")
            description = " ".join(x for x in (op.get("summary"), op.get("description")) if x)
            out.append({"name": name, "description": description or f"{method.upper()} {path}",
                        "parameters": params, "method": method.upper(), "path": path})
    return out


class APITools:
    """The tools of one server; ``tools()`` for the agent's tool list, ``call(name, args)`` to run one."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._tools: dict[str, dict[str, Any]] | None = None

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            try:
                detail = json.loads(err.read()).get("detail", err.reason)
            except (ValueError, AttributeError):
                detail = err.reason
            return err.code, {"error": {"status": err.code, "detail": str(detail)}}

    def _index(self) -> dict[str, dict[str, Any]]:
        if self._tools is None:
            status, schema = self._request("GET", "/openapi.json")
            if status != 200:
                raise ConnectionError(f"{self.base_url}/openapi.json answered {status}")
            self._tools = {t["name"]: t for t in tools_from_openapi(schema)}
        return self._tools

    def tools(self) -> list[dict[str, Any]]:
        """Tool specs for an agent: ``name``, ``description``, ``parameters`` (a JSON schema)."""
        return [{k: t[k] for k in ("name", "description", "parameters")} for t in self._index().values()]

    def call(self, tool_name: str, args: dict[str, Any] | None = None) -> Any:
        """Run a tool; the server's JSON answer, or ``{"error": {"status", "detail"}}`` for a refused request.

        Raises ``KeyError`` for an unknown tool name (a programming error, not an input error)."""
        tool = self._index().get(tool_name)
        if tool is None:
            raise KeyError(f"unknown tool {tool_name!r}; tools: {', '.join(self._index())}")
        body = None if tool["method"] == "GET" else (args or {})
        return self._request(tool["method"], tool["path"], body)[1]
