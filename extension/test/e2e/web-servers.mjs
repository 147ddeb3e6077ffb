// Apache httpd and nginx, configured as DoD CAC sites configure them, for the browsers to reach
// over the card: each started from a config file of its own in a temporary directory, on free
// ports of 127.0.0.1, and stopped by the PID it was started with. Every page shows the client
// certificate's CN the server saw (Apache's SSL_CLIENT_S_DN_CN, the same value from nginx's
// $ssl_client_s_dn) and the protocol, so a test asserts on what the server saw.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sleep } from "./stack.mjs";

const APACHE_MODULES = "/usr/lib/apache2/modules";

/** A port of 127.0.0.1 nothing listens on now. */
async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A self-signed server certificate for localhost (browsers run with acceptInsecureCerts). */
function serverCertificate(dir) {
  const made = spawnSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=DNS:localhost", "-addext", "basicConstraints=critical,CA:FALSE",
      "-keyout", join(dir, "server.key"), "-out", join(dir, "server.pem")],
    { encoding: "utf8" },
  );
  if (made.status !== 0) throw new Error(`openssl req: ${made.stderr}`);
}

/** Wait until `port` accepts connections, or fail with what the server logged. */
async function listening(port, child, log) {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    const open = await new Promise((resolve) => {
      const probe = connect(port, "127.0.0.1");
      probe.once("connect", () => (probe.destroy(), resolve(true)));
      probe.once("error", () => resolve(false));
    });
    if (open) return;
    await sleep(100);
  }
  throw new Error(`the server did not listen on ${port}: ${existsSync(log) ? readFileSync(log, "utf8") : "(no log)"}`);
}

/**
 * A started server, once every origin's port listens: its error log, and a stop that ends it
 * by its PID and removes its directory.
 */
async function serve(child, dir, origins, log) {
  for (const origin of Object.values(origins)) await listening(Number(new URL(origin).port), child, log);
  return {
    origins,
    log: () => (existsSync(log) ? readFileSync(log, "utf8") : ""),
    async stop() {
      child.kill("SIGTERM");
      for (let i = 0; i < 50 && child.exitCode === null; i++) await sleep(100);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Apache httpd 2.4 (mod_ssl), one virtual host per site, each on its own port:
 * - `locationTls12`: client certificates asked only under /cac (`SSLVerifyClient require`
 *   inside a `<Location>`), TLS 1.2: Apache renegotiates after the request;
 * - `locationTls13`: the same under TLS 1.3, which needs post-handshake auth (browsers send none);
 * - `siteTls12`, `siteTls13`: client certificates for the whole site.
 * `caFile`: the CAs whose certificates the sites accept (and name in their request).
 * @returns {Promise<{origins: Record<string, string>, log: () => string, stop: () => Promise<void>}>}
 */
export async function startApache(caFile) {
  const dir = mkdtempSync(join(tmpdir(), "cacbridge-apache-"));
  serverCertificate(dir);
  const docs = join(dir, "htdocs");
  mkdirSync(join(docs, "cac"), { recursive: true });
  const page = '<!DOCTYPE html><html lang="en"><title>CAC site</title><p id="cn"><!--#echo var="SSL_CLIENT_S_DN_CN" --></p><p id="protocol"><!--#echo var="SSL_PROTOCOL" --></p>\n';
  writeFileSync(join(docs, "cac", "index.shtml"), page);
  writeFileSync(join(docs, "index.shtml"), page);
  const sites = {
    locationTls12: { protocol: "TLSv1.2", perLocation: true },
    locationTls13: { protocol: "TLSv1.3", perLocation: true },
    siteTls12: { protocol: "TLSv1.2", perLocation: false },
    siteTls13: { protocol: "TLSv1.3", perLocation: false },
  };
  const origins = {};
  const hosts = [];
  for (const [name, { protocol, perLocation }] of Object.entries(sites)) {
    const port = await freePort();
    origins[name] = `https://localhost:${port}`;
    const ask = ["SSLVerifyClient require", "SSLVerifyDepth 2"];
    hosts.push(
      `Listen 127.0.0.1:${port}`,
      `<VirtualHost 127.0.0.1:${port}>`,
      "  SSLEngine on",
      `  SSLCertificateFile ${dir}/server.pem`,
      `  SSLCertificateKeyFile ${dir}/server.key`,
      `  SSLCACertificateFile ${caFile}`,
      `  SSLProtocol -all +${protocol}`,
      "  SSLOptions +StdEnvVars",
      ...(perLocation ? ["  <Location /cac>", ...ask.map((line) => `    ${line}`), "  </Location>"] : ask.map((line) => `  ${line}`)),
      "</VirtualHost>",
    );
  }
  const log = join(dir, "error.log");
  const config = [
    `ServerRoot ${dir}`,
    `PidFile ${dir}/httpd.pid`,
    `Mutex file:${dir}`,
    `ErrorLog ${log}`,
    "LogLevel warn ssl:info",
    ...["mpm_event", "ssl", "include", "mime", "authz_core", "dir"].map((m) => `LoadModule ${m}_module ${APACHE_MODULES}/mod_${m}.so`),
    "ServerName localhost",
    `DocumentRoot ${docs}`,
    "DirectoryIndex index.shtml",
    "TypesConfig /dev/null",
    "AddType text/html .shtml",
    "AddOutputFilter INCLUDES .shtml",
    `<Directory ${docs}>`,
    "  Options +Includes",
    "  Require all granted",
    "</Directory>",
    ...hosts,
  ].join("\n");
  writeFileSync(join(dir, "httpd.conf"), `${config}\n`);
  return serve(spawn("/usr/sbin/apache2", ["-f", join(dir, "httpd.conf"), "-DFOREGROUND"], { stdio: "ignore" }), dir, origins, log);
}

/**
 * nginx, two sites: `verifyOn` (`ssl_verify_client on`, the CAs of `caFile`) and `optionalNoCa`
 * (`ssl_verify_client optional_no_ca`: nginx asks for any certificate and leaves its checking to
 * the application behind it). TLS 1.2 and 1.3 both on: browsers take 1.3.
 * @returns {Promise<{origins: Record<string, string>, log: () => string, stop: () => Promise<void>}>}
 */
export async function startNginx(caFile) {
  const dir = mkdtempSync(join(tmpdir(), "cacbridge-nginx-"));
  serverCertificate(dir);
  const origins = { verifyOn: `https://localhost:${await freePort()}`, optionalNoCa: `https://localhost:${await freePort()}` };
  const page = '<!DOCTYPE html><html lang="en"><title>CAC site</title><p id="cn">$client_cn</p><p id="protocol">$ssl_protocol</p><p id="verify">$ssl_client_verify</p>\\n';
  const server = (/** @type {string} */ origin, /** @type {string[]} */ verify) => [
    "  server {",
    `    listen 127.0.0.1:${new URL(origin).port} ssl;`,
    `    ssl_certificate ${dir}/server.pem;`,
    `    ssl_certificate_key ${dir}/server.key;`,
    "    ssl_protocols TLSv1.2 TLSv1.3;",
    ...verify.map((line) => `    ${line}`),
    `    location / { default_type text/html; return 200 '${page}'; }`,
    "  }",
  ];
  const log = join(dir, "error.log");
  const config = [
    `pid ${dir}/nginx.pid;`,
    `error_log ${log} info;`,
    "worker_processes 1;",
    "events {}",
    "http {",
    "  access_log off;",
    ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `  ${t}_temp_path ${dir}/${t};`),
    // The CN out of the subject DN (RFC 2253 order: CN first).
    '  map $ssl_client_s_dn $client_cn { "~(^|,)CN=(?<cn>[^,]+)" $cn; default ""; }',
    ...server(origins.verifyOn, [`ssl_client_certificate ${caFile};`, "ssl_verify_client on;", "ssl_verify_depth 2;"]),
    ...server(origins.optionalNoCa, ["ssl_verify_client optional_no_ca;"]),
    "}",
  ].join("\n");
  writeFileSync(join(dir, "nginx.conf"), `${config}\n`);
  return serve(spawn("/usr/sbin/nginx", ["-c", join(dir, "nginx.conf"), "-p", dir, "-g", "daemon off;"], { stdio: "ignore" }), dir, origins, log);
}
