'use strict';

/*
 * Malformed and hostile requests to the admin API (issue 3, "Validation"):
 * each gets the documented status, a rejected request changes nothing
 * (the database is byte-for-byte the same afterwards), and kiln goes on
 * answering with no worker lost.
 *
 * Documented statuses: bad JSON 400, wrong Content-Type 415, wrong field
 * type or value 422 with the message starting with the field name, body
 * over 64 KiB 413 (answered by Kore itself), unknown route or name 404,
 * wrong method 405 with Allow, no or bad credentials 401, a role that
 * may not 403. Requests Kore refuses before kiln sees them (unknown
 * methods, no Host, chunked bodies, over-long URIs, a header block over
 * http_header_max) get Kore's 4xx, in kiln's JSON shape since issue 10
 * (checked in public/hostile.test.js): never a 2xx.
 *
 * Every request goes over its own raw TCP connection, byte for byte.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');

const pg = h.filePg();

const state = {};

const KORE = 'kore';	/* a plain answer from Kore, not kiln's JSON */

function newSource(o = {})
{
	return Object.assign({
		name: 'hostile-new',
		kind: 'client_credentials',
		token_url: 'http://127.0.0.1:9/token',
		client_id: 'hostile',
		client_secret: 'hostile-secret',
	}, o);
}

/* JSON text with a string value spliced in raw (escapes of our own). */
function withRaw(obj, key, rawJsonString)
{
	const marker = `@@${key}@@`;
	return JSON.stringify(Object.assign({}, obj, { [key]: marker }))
	    .replace(`"${marker}"`, rawJsonString);
}

function bytes(...parts)
{
	return Buffer.concat(parts.map((p) => typeof p === 'number' ?
	    Buffer.from([p]) : Buffer.from(p, 'utf8')));
}

/*
 * The table. Each row: [name, method, path, {auth, ctype, body, headers,
 * raw, pauseMs, noCl}, expect]. auth: 'admin' (default), 'none', or a
 * token; ctype defaults to application/json when there is a body.
 * expect: {status: n | [n...], json: bool (kiln's error shape, default
 * true for a single status), code, field, allow}.
 */
async function table()
{
	const viewer = await a.jwt('viewer');
	const operator = await a.jwt('operator');
	const algNone = a.handJwt({ alg: 'none', typ: 'JWT' },
	    a.standardClaims('admin'));
	const pad = (n) => JSON.stringify({ name: 'big', pad: 'x'.repeat(n) });
	const many = (n, size) => Array.from({ length: n },
	    (_, i) => [`X-Flood-${i}`, 'v'.repeat(size)]);
	const E = (status, field = null, code = null) => ({ status, field,
	    code });
	const BAD = E(400, null, 'bad_request');
	const T422 = (field) => E(422, field, 'invalid_field');
	const NF = E(404, null, 'not_found');

	return [
		/* ---- bad JSON: 400 */
		['unclosed object', 'POST', '/api/tokens', { body: '{' }, BAD],
		['cut after a key', 'POST', '/api/tokens',
		    { body: '{"name":' }, BAD],
		['not JSON at all', 'POST', '/api/tokens',
		    { body: 'not json' }, BAD],
		['empty body', 'POST', '/api/tokens', { body: '' }, BAD],
		['trailing garbage', 'POST', '/api/tokens',
		    { body: '{"name":"x"} {}' }, BAD],
		['single quotes', 'POST', '/api/tokens',
		    { body: "{'name':'x'}" }, BAD],
		['trailing comma', 'POST', '/api/tokens',
		    { body: '{"name":"x",}' }, BAD],
		['NaN', 'POST', '/api/tokens',
		    { body: '{"refresh_buffer":NaN}' }, BAD],
		['unterminated string', 'POST', '/api/tokens',
		    { body: '{"name":"abc' }, BAD],
		['raw newline inside a string', 'POST', '/api/tokens',
		    { body: '{"name":"a\nb"}' }, BAD],
		['bad JSON on PATCH', 'PATCH', '/api/tokens/alpha',
		    { body: '{"scope":' }, BAD],
		['bad JSON on POST /api/keys', 'POST', '/api/keys',
		    { body: '{"name":"k",' }, BAD],

		/* ---- deep nesting */
		['60000 [ (under 64 KiB)', 'POST', '/api/tokens',
		    { body: '['.repeat(60000) }, BAD],
		['100k [ (over 64 KiB)', 'POST', '/api/tokens',
		    { body: '['.repeat(100000), pauseMs: 300 },
		    { status: 413, json: false }],
		['70 nested objects, valid JSON', 'POST', '/api/tokens',
		    { body: '{"a":'.repeat(70) + '1' + '}'.repeat(70) }, BAD],
		['64 nested arrays (not an object)', 'POST', '/api/tokens',
		    { body: '['.repeat(64) + ']'.repeat(64) }, T422('source')],

		/* ---- sizes */
		['10 MB body', 'POST', '/api/tokens',
		    { body: Buffer.alloc(10 << 20, 0x20), pauseMs: 300 },
		    { status: 413, json: false }],
		['64 KiB + 1 of valid JSON', 'POST', '/api/tokens',
		    { body: pad(65537 - pad(0).length), pauseMs: 300 },
		    { status: 413, json: false }],
		['Content-Length 10 MB, no body sent', 'POST', '/api/tokens',
		    { headers: [['Content-Length', String(10 << 20)]],
		    noCl: true, body: '' }, { status: 413, json: false }],

		/* ---- NUL bytes */
		['raw NUL inside JSON', 'POST', '/api/tokens',
		    { body: bytes('{"name":"a', 0, 'b"}') }, BAD],
		['\\u0000 in a new source name', 'POST', '/api/tokens',
		    { body: withRaw(newSource(), 'name', '"nul\\u0000x"') },
		    T422('name')],
		['\\u0000 in a new client_id', 'POST', '/api/tokens',
		    { body: withRaw(newSource({ name: 'nul-cid' }), 'client_id',
		    '"cid\\u0000hidden"') }, T422('client_id')],
		['\\u0000 in a PATCHed client_id', 'PATCH', '/api/tokens/alpha',
		    { body: '{"client_id":"alpha\\u0000evil"}' },
		    T422('client_id')],
		['\\u0000 in a key name', 'POST', '/api/keys',
		    { body: '{"name":"k\\u0000x","role":"viewer"}' },
		    T422('name')],
		['%00 in a path name', 'GET', '/api/tokens/alpha%00/events',
		    {}, NF],
		['raw NUL in the request line', null, null, { raw:
		    bytes('GET /api/tokens/al', 0, 'pha HTTP/1.1\r\nHost: x\r\n' +
		    'Connection: close\r\n\r\n') },
		    { status: [400, 404], json: false }],

		/* ---- invalid UTF-8 and Unicode */
		['0xff 0xfe in a string', 'POST', '/api/tokens',
		    { body: bytes('{"name":"', 0xff, 0xfe, '"}') }, BAD],
		['overlong "/" (0xc0 0xaf)', 'POST', '/api/tokens',
		    { body: Buffer.concat([Buffer.from(JSON.stringify(
		    newSource({ name: 'overlong' })).slice(0, -1) +
		    ',"scope":"'), Buffer.from([0xc0, 0xaf]),
		    Buffer.from('"}')]) }, BAD],
		['UTF-8 encoded surrogate (ed a0 80) in a PATCHed scope',
		    'PATCH', '/api/tokens/alpha', { body: bytes('{"scope":"',
		    0xed, 0xa0, 0x80, '"}') }, BAD],
		['code point above U+10FFFF in a key name', 'POST',
		    '/api/keys', { body: bytes('{"name":"k', 0xf4, 0x90, 0x80,
		    0x80, '","role":"viewer"}') }, BAD],
		['truncated 3-byte sequence', 'POST', '/api/tokens',
		    { body: bytes('{"scope":"', 0xe2, 0x82, '"}') }, BAD],
		['invalid UTF-8 in a key', 'POST', '/api/tokens',
		    { body: bytes('{"', 0xc3, '":1}') }, BAD],
		['lone surrogate \\ud800 in client_id', 'POST', '/api/tokens',
		    { body: withRaw(newSource({ name: 'surrogate' }),
		    'client_id', '"x\\ud800"') },
		    { status: [400, 422], json: true }],

		/* ---- SQL fragments in names and parameters */
		['SQL in a new name', 'POST', '/api/tokens',
		    { body: JSON.stringify(newSource({ name:
		    "x'; DROP TABLE tokens;--" })) }, T422('name')],
		["name alpha' OR '1'='1", 'POST', '/api/tokens',
		    { body: JSON.stringify(newSource({ name:
		    "alpha' OR '1'='1" })) }, T422('name')],
		['GET with SQL in the path', 'GET',
		    "/api/tokens/x'%3B%20DROP%20TABLE%20tokens%3B--", {}, NF],
		['DELETE with SQL in the path', 'DELETE',
		    "/api/tokens/alpha'%20OR%20'1'%3D'1", {}, NF],
		['PATCH with SQL in the path', 'PATCH', "/api/tokens/alpha'--",
		    { body: '{"scope":"x"}' }, NF],
		['refresh with SQL in the path', 'POST',
		    "/api/tokens/alpha';--/refresh", {}, NF],
		['events before=1 OR 1=1', 'GET',
		    '/api/tokens/alpha/events?before=1%20OR%201%3D1', {},
		    T422('before')],
		['DELETE key 1 OR 1=1', 'DELETE', '/api/keys/1%20OR%201=1', {},
		    NF],
		['DELETE key 1;DROP', 'DELETE', '/api/keys/1;DROP%20TABLE', {},
		    NF],
		['stop ?token=alpha\'--', 'POST',
		    "/api/prewarming/stop?token=alpha'--", {}, NF],
		['start ?token= with SQL', 'POST',
		    '/api/prewarming/start?token=x%27%3BUPDATE%20settings', {},
		    NF],
		['refresh ?token= with SQL', 'POST',
		    "/api/prewarming/refresh?token=alpha'%20OR%201=1", {}, NF],
		['key with SQL name and a bad role', 'POST', '/api/keys',
		    { body: JSON.stringify({ name:
		    "x'); DELETE FROM api_keys;--", role: 'superuser' }) },
		    T422('role')],

		/* ---- path traversal */
		['/api/tokens/../keys', 'GET', '/api/tokens/../keys', {}, NF],
		['%2e%2e%2f', 'GET', '/api/tokens/%2e%2e%2fkeys', {}, NF],
		['/../../etc/passwd', 'GET', '/../../etc/passwd', {}, NF],
		['alpha/../../keys', 'GET', '/api/tokens/alpha/../../keys', {},
		    NF],
		['DELETE ..%2f..%2fkeys%2f1', 'DELETE',
		    '/api/tokens/..%2f..%2fapi%2fkeys%2f1', {}, NF],
		['events/../../../etc/passwd', 'GET',
		    '/api/tokens/alpha/events/../../../../etc/passwd', {}, NF],
		['//api//tokens', 'GET', '//api//tokens', {}, NF],

		/* ---- header floods */
		['100 headers, Authorization after them', 'POST', '/api/tokens',
		    { authLast: true, headers: many(100, 8),
		    body: JSON.stringify(newSource({ name: 'flood' })) },
		    { status: [400, 401, 411, 431], json: false }],
		['one 10 KiB header', 'GET', '/api/tokens',
		    { headers: [['X-Big', 'x'.repeat(10240)]] },
		    { status: [null, 400, 431], json: false }],
		['1000 headers (64 KiB)', 'GET', '/api/tokens',
		    { headers: many(1000, 60) },
		    { status: [null, 400, 431], json: false }],
		['7 KB bearer garbage', 'GET', '/api/keys',
		    { auth: 'k'.repeat(7000) }, E(401, null, 'unauthorized')],
		['8 KB three-part bearer', 'GET', '/api/keys',
		    { auth: `${'a'.repeat(2600)}.${'b'.repeat(2600)}.` +
		    `${'c'.repeat(2600)}` }, E(401, null, 'unauthorized')],
		['viewer then admin Authorization, DELETE', 'DELETE',
		    '/api/tokens/alpha', { auth: 'none', headers: [
		    ['Authorization', `Bearer ${viewer}`],
		    ['Authorization', `Bearer ${a.ADMIN_KEY}`]] },
		    { status: [400, 401, 403], json: true }],

		/* ---- negative and huge numbers */
		['refresh_buffer -1', 'POST', '/api/tokens',
		    { body: JSON.stringify(newSource({ refresh_buffer: -1 })) },
		    T422('refresh_buffer')],
		['fallback_lifetime 0', 'PATCH', '/api/tokens/alpha',
		    { body: '{"fallback_lifetime":0}' },
		    T422('fallback_lifetime')],
		['fallback_lifetime 1e400', 'PATCH', '/api/tokens/alpha',
		    { body: '{"fallback_lifetime":1e400}' },
		    T422('fallback_lifetime')],
		['fallback_lifetime 10^23', 'PATCH', '/api/tokens/alpha',
		    { body: '{"fallback_lifetime":99999999999999999999999}' },
		    T422('fallback_lifetime')],
		['refresh_buffer -2^63-1', 'PATCH', '/api/tokens/alpha',
		    { body: '{"refresh_buffer":-9223372036854775809}' },
		    T422('refresh_buffer')],
		['refresh_buffer 1.5', 'PATCH', '/api/tokens/alpha',
		    { body: '{"refresh_buffer":1.5}' }, T422('refresh_buffer')],
		['refresh_buffer 86401', 'PATCH', '/api/tokens/alpha',
		    { body: '{"refresh_buffer":86401}' },
		    T422('refresh_buffer')],
		['events limit=-1', 'GET', '/api/tokens/alpha/events?limit=-1',
		    {}, T422('limit')],
		['events limit=0', 'GET', '/api/tokens/alpha/events?limit=0',
		    {}, T422('limit')],
		['events limit=501', 'GET',
		    '/api/tokens/alpha/events?limit=501', {}, T422('limit')],
		['events limit=10^20', 'GET',
		    '/api/tokens/alpha/events?limit=99999999999999999999', {},
		    T422('limit')],
		['events limit=abc', 'GET',
		    '/api/tokens/alpha/events?limit=abc', {}, T422('limit')],
		['events before=-5', 'GET',
		    '/api/tokens/alpha/events?before=-5', {}, T422('before')],
		['events before=0', 'GET', '/api/tokens/alpha/events?before=0',
		    {}, T422('before')],
		['DELETE key -1', 'DELETE', '/api/keys/-1', {}, NF],
		['DELETE key 10^20', 'DELETE', '/api/keys/99999999999999999999',
		    {}, NF],

		/* ---- wrong types and values */
		['name 123', 'POST', '/api/tokens',
		    { body: JSON.stringify(newSource({ name: 123 })) },
		    T422('name')],
		['kind as an array', 'POST', '/api/tokens',
		    { body: JSON.stringify(newSource({ kind:
		    ['client_credentials'] })) }, T422('kind')],
		['token_url as an object', 'POST', '/api/tokens',
		    { body: JSON.stringify(newSource({ token_url: {} })) },
		    T422('token_url')],
		['client_secret 42', 'POST', '/api/tokens',
		    { body: JSON.stringify(newSource({ client_secret: 42 })) },
		    T422('client_secret')],
		['enabled "yes"', 'PATCH', '/api/tokens/alpha',
		    { body: '{"enabled":"yes"}' }, T422('enabled')],
		['require_header 1', 'PATCH', '/api/tokens/alpha',
		    { body: '{"require_header":1}' }, T422('require_header')],
		['refresh_buffer "300"', 'PATCH', '/api/tokens/alpha',
		    { body: '{"refresh_buffer":"300"}' },
		    T422('refresh_buffer')],
		['body is an array', 'POST', '/api/tokens', { body: '[]' },
		    T422('source')],
		['body is a string', 'POST', '/api/tokens', { body: '"str"' },
		    T422('source')],
		['body is null (PATCH)', 'PATCH', '/api/tokens/alpha',
		    { body: 'null' }, T422('source')],
		['body is a number', 'POST', '/api/tokens', { body: '42' },
		    T422('source')],
		['PATCH kind', 'PATCH', '/api/tokens/alpha',
		    { body: '{"kind":"password"}' }, T422('kind')],
		['PATCH name', 'PATCH', '/api/tokens/alpha',
		    { body: '{"name":"beta"}' }, T422('name')],
		['token_url ftp://', 'PATCH', '/api/tokens/alpha',
		    { body: '{"token_url":"ftp://127.0.0.1/token"}' },
		    T422('token_url')],
		['token_url http:// (no host)', 'PATCH', '/api/tokens/alpha',
		    { body: '{"token_url":"http://"}' }, T422('token_url')],
		['empty client_secret', 'PATCH', '/api/tokens/alpha',
		    { body: '{"client_secret":""}' }, T422('client_secret')],
		['9000-byte client_secret', 'PATCH', '/api/tokens/alpha',
		    { body: JSON.stringify({ client_secret: 's'.repeat(9000) }) },
		    T422('client_secret')],
		['auth_method none', 'PATCH', '/api/tokens/alpha',
		    { body: '{"auth_method":"none"}' }, T422('auth_method')],
		['access public', 'PATCH', '/api/tokens/alpha',
		    { body: '{"access":"public"}' }, T422('access')],
		['client_secret {"env":"PATH"} over the API', 'PATCH',
		    '/api/tokens/alpha',
		    { body: '{"client_secret":{"env":"PATH"}}' },
		    T422('client_secret')],
		['token_path a..b', 'PATCH', '/api/tokens/alpha',
		    { body: '{"token_path":"a..b"}' }, T422('token_path')],
		['scope with a control character', 'PATCH', '/api/tokens/alpha',
		    { body: '{"scope":"a\\u0001b"}' }, T422('scope')],
		['key role superadmin', 'POST', '/api/keys',
		    { body: '{"name":"k","role":"superadmin"}' }, T422('role')],
		['key name empty', 'POST', '/api/keys',
		    { body: '{"name":"","role":"viewer"}' }, T422('name')],
		['key name 65 chars', 'POST', '/api/keys',
		    { body: JSON.stringify({ name: 'n'.repeat(65),
		    role: 'viewer' }) }, T422('name')],
		['key name with \\u0001', 'POST', '/api/keys',
		    { body: '{"name":"a\\u0001","role":"viewer"}' },
		    T422('name')],
		['key role 7', 'POST', '/api/keys',
		    { body: '{"name":"k","role":7}' }, T422('role')],

		/* ---- unknown fields */
		['unknown field on create', 'POST', '/api/tokens',
		    { body: JSON.stringify(newSource({ evil: 1 })) },
		    T422('evil')],
		['__proto__ on PATCH', 'PATCH', '/api/tokens/alpha',
		    { body: '{"__proto__":{"admin":true}}' },
		    T422('__proto__')],
		['state on PATCH', 'PATCH', '/api/tokens/alpha',
		    { body: '{"state":{"generation":99}}' }, T422('state')],
		['paused on PATCH', 'PATCH', '/api/tokens/alpha',
		    { body: '{"paused":true}' }, T422('paused')],
		['extra field on a key', 'POST', '/api/keys',
		    { body: '{"name":"k","role":"viewer","id":1}' },
		    T422('name')],

		/* ---- duplicate keys */
		['name twice', 'POST', '/api/tokens',
		    { body: JSON.stringify(newSource({ name: 'dup-one' }))
		    .replace('{', '{"name":"dup-two",') }, T422('name')],
		['scope twice (PATCH)', 'PATCH', '/api/tokens/alpha',
		    { body: '{"scope":"a","scope":"b"}' }, T422('scope')],
		['role twice (key)', 'POST', '/api/keys',
		    { body: '{"name":"k","role":"viewer","role":"admin"}' },
		    { status: 422, field: null }],

		/* ---- wrong content types */
		['text/plain', 'POST', '/api/tokens', { ctype: 'text/plain',
		    body: JSON.stringify(newSource({ name: 'ct1' })) },
		    E(415, null, 'unsupported_media_type')],
		['form-urlencoded', 'POST', '/api/tokens',
		    { ctype: 'application/x-www-form-urlencoded',
		    body: 'name=ct2&kind=client_credentials' },
		    E(415, null, 'unsupported_media_type')],
		['no Content-Type', 'POST', '/api/tokens', { ctype: null,
		    body: JSON.stringify(newSource({ name: 'ct3' })) },
		    E(415, null, 'unsupported_media_type')],
		['application/jsonx', 'POST', '/api/tokens',
		    { ctype: 'application/jsonx',
		    body: JSON.stringify(newSource({ name: 'ct4' })) },
		    E(415, null, 'unsupported_media_type')],
		['application/json-patch+json', 'PATCH', '/api/tokens/alpha',
		    { ctype: 'application/json-patch+json',
		    body: '[{"op":"replace","path":"/scope","value":"x"}]' },
		    E(415, null, 'unsupported_media_type')],
		['multipart/form-data', 'POST', '/api/keys',
		    { ctype: 'multipart/form-data; boundary=x',
		    body: '--x\r\n\r\n{"name":"k","role":"admin"}\r\n--x--' },
		    E(415, null, 'unsupported_media_type')],

		/* ---- methods */
		['PUT /api/tokens', 'PUT', '/api/tokens',
		    { body: JSON.stringify(newSource({ name: 'put' })) },
		    { status: 405, allow: ['GET', 'POST'] }],
		['DELETE /api/tokens', 'DELETE', '/api/tokens', {},
		    { status: 405, allow: ['GET', 'POST'] }],
		['POST /api/tokens/alpha', 'POST', '/api/tokens/alpha',
		    { body: '{}' }, { status: 405,
		    allow: ['GET', 'PATCH', 'DELETE'] }],
		['PATCH /api/prewarming/status', 'PATCH',
		    '/api/prewarming/status', { body: '{}' },
		    { status: 405, allow: ['GET'] }],
		['GET /api/prewarming/stop', 'GET', '/api/prewarming/stop', {},
		    { status: 405, allow: ['POST'] }],
		['GET /api/tokens/alpha/refresh', 'GET',
		    '/api/tokens/alpha/refresh', {},
		    { status: 405, allow: ['POST'] }],
		['PUT /api/keys/1', 'PUT', '/api/keys/1', { body: '{}' },
		    { status: 405, allow: ['DELETE'] }],
		['OPTIONS /api/tokens', 'OPTIONS', '/api/tokens', {},
		    { status: 405, allow: ['GET', 'POST'] }],
		['DELETE /health', 'DELETE', '/health', {},
		    { status: 405, allow: ['GET'] }],
		['POST /metrics', 'POST', '/metrics', { body: '{}' },
		    { status: 405, allow: ['GET'] }],
		['TRACE (unknown to Kore)', 'TRACE', '/api/tokens', {},
		    { status: [400, 405, 501], json: false }],
		['made-up method', 'FOO', '/api/tokens', {},
		    { status: [400, 405, 501], json: false }],

		/* ---- framing that Kore refuses */
		['chunked body', 'POST', '/api/tokens', { noCl: true,
		    headers: [['Transfer-Encoding', 'chunked']],
		    body: '2\r\n{}\r\n0\r\n\r\n' },
		    { status: [400, 411, 501], json: false }],
		['Content-Length -1', 'POST', '/api/tokens', { noCl: true,
		    headers: [['Content-Length', '-1']], body: '' },
		    { status: [400, 411], json: false }],
		['Content-Length abc', 'POST', '/api/tokens', { noCl: true,
		    headers: [['Content-Length', 'abc']], body: '' },
		    { status: [400, 411], json: false }],
		['5000-byte URI', 'GET', `/api/tokens/${'a'.repeat(5000)}`, {},
		    { status: [404, 414], json: false }],
		['garbage request line', null, null,
		    { raw: Buffer.from('GARBAGE\r\n\r\n') },
		    { status: 400, json: false }],
		['no Host header', null, null, { raw: Buffer.from(
		    'DELETE /api/tokens/alpha HTTP/1.1\r\nAuthorization: ' +
		    `Bearer ${a.ADMIN_KEY}\r\nConnection: close\r\n\r\n`) },
		    { status: 400, json: false }],
		['header line without a colon', null, null, { raw: Buffer.from(
		    'DELETE /api/tokens/alpha HTTP/1.1\r\nHost: x\r\n' +
		    `Authorization: Bearer ${a.ADMIN_KEY}\r\nBroken\r\n` +
		    'Connection: close\r\n\r\n') },
		    { status: 400, json: false }],

		/* ---- credentials and roles on destructive routes */
		['DELETE without credentials', 'DELETE', '/api/tokens/alpha',
		    { auth: 'none' }, E(401, null, 'unauthorized')],
		['DELETE with alg none', 'DELETE', '/api/tokens/alpha',
		    { auth: algNone }, E(401, null, 'unauthorized')],
		['PATCH as viewer', 'PATCH', '/api/tokens/alpha',
		    { auth: viewer, body: '{"scope":"x"}' },
		    E(403, null, 'forbidden')],
		['DELETE as operator', 'DELETE', '/api/tokens/alpha',
		    { auth: operator }, E(403, null, 'forbidden')],
		['create a key as viewer', 'POST', '/api/keys',
		    { auth: viewer, body: '{"name":"k","role":"admin"}' },
		    E(403, null, 'forbidden')],
		['create as viewer with a bad body', 'POST', '/api/tokens',
		    { auth: viewer, body: '{' }, E(403, null, 'forbidden')],
	];
}

function buildRequest(k, method, path, o)
{
	if (o.raw)
		return o.raw;
	const headers = [];
	let auth = o.auth === undefined ? a.ADMIN_KEY : o.auth;
	if (auth === 'none')
		auth = null;
	if (auth !== null && !o.authLast)
		headers.push(['Authorization', `Bearer ${auth}`]);
	const hasBody = o.body !== undefined;
	const ctype = o.ctype === undefined ? (hasBody ? 'application/json' :
	    null) : o.ctype;
	if (ctype !== null)
		headers.push(['Content-Type', ctype]);
	headers.push(...(o.headers || []));
	if (auth !== null && o.authLast)
		headers.push(['Authorization', `Bearer ${auth}`]);
	return a.reqBytes(method, path, { headers,
	    body: hasBody ? o.body : null, noCl: !!o.noCl,
	    pauseMs: o.pauseMs || null });
}

function check(name, r, exp)
{
	const want = Array.isArray(exp.status) ? exp.status : [exp.status];
	const problems = [];
	if (!want.includes(r.status)) {
		problems.push(`status ${r.status} (${r.why}), expected ` +
		    `${want.join(' or ')}: ${String(r.text).slice(0, 200)}`);
		return problems.map((p) => `${name}: ${p}`);
	}
	if (r.status !== null && r.status >= 200 && r.status < 300)
		problems.push(`a 2xx: ${r.text.slice(0, 200)}`);
	const json = exp.json === undefined ? !Array.isArray(exp.status) :
	    exp.json;
	if (json && r.status !== null) {
		const b = r.json;
		if (!/application\/json/i.test(r.headers['content-type'] || ''))
			problems.push(`content-type ${r.headers['content-type']}`);
		if (!b || b.success !== false || !b.error ||
		    typeof b.error.code !== 'string' ||
		    typeof b.error.message !== 'string') {
			problems.push(`not the error shape: ${r.text.slice(0,
			    200)}`);
		} else {
			if (exp.code && b.error.code !== exp.code)
				problems.push(`code ${b.error.code}, expected ` +
				    `${exp.code}`);
			if (exp.field && !b.error.message.startsWith(
			    `${exp.field}:`))
				problems.push(`message "${b.error.message}" ` +
				    `does not start with "${exp.field}:"`);
		}
	}
	if (exp.allow) {
		const allow = String(r.headers.allow || '').split(/,\s*/);
		for (const m of exp.allow) {
			if (!allow.includes(m))
				problems.push(`Allow "${r.headers.allow}" ` +
				    `lacks ${m}`);
		}
	}
	return problems.map((p) => `${name}: ${p}`);
}

test('hostile_requests_get_the_documented_status', { timeout: 90000 },
    async () => {
	const env = await a.adminKiln(pg, 'hostile', {
		sources: [{ name: 'alpha' }, { name: 'beta' }],
		workers: 2,
		lifetime: 3600,
		env: { KILN_RATE_ANONYMOUS: '100000' },
	});
	const { k, db } = env;
	state.env = env;
	await h.waitToken(k, 'alpha');
	await h.waitToken(k, 'beta');

	/* Nothing may refresh while the table runs. */
	const stop = await a.call(k, 'POST', '/api/prewarming/stop',
	    { auth: env.adminKey });
	assert.equal(stop.status, 200, stop.text);
	await h.sleep(500);
	state.before = await a.dataDump(db);
	assert.ok(state.before.includes('INSERT INTO public.token_sources'),
	    'the dump has the sources');

	const rows = await table();
	assert.ok(rows.length >= 40, `${rows.length} hostile requests`);
	const problems = [];
	for (const [name, method, path, o, exp] of rows) {
		let r;
		try {
			r = await a.raw(k.port, buildRequest(k, method, path, o),
			    { timeout: 15000 });
		} catch (e) {
			problems.push(`${name}: ${e.message}`);
			continue;
		}
		problems.push(...check(name, r, exp));
	}
	state.count = rows.length;
	assert.deepEqual(problems, [], `${problems.length} of ` +
	    `${rows.length} hostile requests not answered as documented`);
});

test('database_unchanged_after_hostile_requests', { timeout: 30000 },
    async () => {
	assert.ok(state.before, 'the table ran');
	const { db } = state.env;
	const after = await a.dataDump(db);
	if (after !== state.before) {
		const b = new Set(state.before.split('\n'));
		const af = new Set(after.split('\n'));
		const gone = [...b].filter((l) => !af.has(l));
		const added = [...af].filter((l) => !b.has(l));
		assert.fail(`the database changed:\n- ${gone.join('\n- ')}\n` +
		    `+ ${added.join('\n+ ')}`);
	}
});

test('kiln_alive_after_hostile_requests', { timeout: 30000 }, async () => {
	assert.ok(state.env, 'the table ran');
	const { k } = state.env;
	/* Fresh connections reach both workers. */
	for (let i = 0; i < 10; i++) {
		const r = await k.get('/health');
		assert.equal(r.status, 200, `/health: ${r.status} ${r.text}`);
		const t = await k.currentToken('alpha');
		assert.equal(t.status, 200, `current-token: ${t.text}`);
	}
	assert.equal(k.exited, null, 'kiln still running');
	assert.deepEqual(a.crashLines(k), [], 'no worker died');
});
