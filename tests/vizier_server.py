"""A local stand-in for VizieR: an HTTPS server on 127.0.0.1 that answers astroquery's
``/viz-bin/votable`` POSTs in VizieR's VOTable format from tables held in memory.

It reads the catalog (``-source``), the cone (``-c``, ``-c.rd``) and column filters such
as ``Gmag=<19`` from the request body astroquery sends, and can be told to fail: answer
5xx, or stall past the client's timeout, for the next N requests. Its certificate comes
from ``trustme`` and is trusted through ``REQUESTS_CA_BUNDLE``, so astroquery runs
unmodified, over HTTPS as it does against the real service.
"""

import io
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_plus

import numpy as np
from astropy.io.votable import from_table
from astropy.table import Table


def _parse(body: str) -> dict:
    """astroquery's request body: ``key=value`` lines (or an urlencoded form)."""
    out = {}
    lines = "\n" in body
    for part in body.split("\n" if lines else "&"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip() if lines else unquote_plus(v.strip())
    return out


def _cone(value: str) -> tuple[float, float]:
    value = value.strip()
    for i in range(1, len(value)):
        if value[i] in "+-" and value[i - 1] not in "eE":
            return float(value[:i]), float(value[i:])
    raise ValueError(f"cannot read the cone centre {value!r}")


class FakeVizier:
    """Serve ``tables`` ({VizieR id: astropy Table with VizieR column names})."""

    def __init__(self, tables: dict, tmp_path):
        import trustme

        self.tables = tables
        self.requests: list[dict] = []
        self.fail_next = 0  #: answer 503 to this many requests
        self.stall_next = 0  #: sleep past the client timeout for this many requests
        self.stall_s = 3.0
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        self.ca_file = tmp_path / "vizier-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                req = _parse(body)
                fake.requests.append(req)
                if fake.stall_next > 0:
                    fake.stall_next -= 1
                    time.sleep(fake.stall_s)
                if fake.fail_next > 0:
                    fake.fail_next -= 1
                    self.send_response(503)
                    self.end_headers()
                    self.wfile.write(b"Service Unavailable")
                    return
                payload = fake.answer(req)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-votable+xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.server = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, req: dict) -> bytes:
        source = req.get("-source", "")
        t = self.tables.get(source)
        if t is not None:
            ra0, dec0 = _cone(req["-c"])
            radius = float(req.get("-c.rd", req.get("-c.rm", "0")))
            if "-c.rm" in req and "-c.rd" not in req:
                radius /= 60.0
            ra, dec = (np.radians(np.asarray(t[c], float)) for c in t.colnames[:2])
            r0, d0 = np.radians(ra0), np.radians(dec0)
            cosd = np.sin(d0) * np.sin(dec) + np.cos(d0) * np.cos(dec) * np.cos(ra - r0)
            keep = np.degrees(np.arccos(np.clip(cosd, -1, 1))) <= radius
            for col, cond in req.items():
                if col in t.colnames and cond.startswith("<"):
                    keep &= np.asarray(t[col], float) < float(cond[1:])
            t = t[keep]
        buf = io.BytesIO()
        if t is None or len(t) == 0:  # VizieR: a RESOURCE with an INFO, no TABLE
            buf.write(
                b'<?xml version="1.0" encoding="UTF-8"?>\n<VOTABLE version="1.4" '
                b'xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE>'
                b'<INFO name="matches" value="0"/></RESOURCE></VOTABLE>\n'
            )
        else:
            vot = from_table(Table(t))
            vot.resources[0].tables[0].name = source
            vot.to_xml(buf)
        return buf.getvalue()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
