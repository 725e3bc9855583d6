// REST client for the vpcd API (API.md): bearer token, JSON bodies, problem+json errors turned into ApiError with the
// offending field. Pure module apart from fetch(); used from the browser main thread and from node tests.

export class ApiError extends Error {
  constructor(problem) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title);
    this.name = 'ApiError';
    this.status = problem.status;
    this.title = problem.title;
    this.detail = problem.detail || '';
    this.field = problem.field || '';
    this.type = problem.type || 'about:blank';
  }
}

const kStatusTitles = {
  400: 'Bad request', 401: 'Not logged in', 403: 'Forbidden', 404: 'Not found', 405: 'Method not allowed',
  409: 'Conflict', 412: 'Changed by someone else', 413: 'Too large', 415: 'Not JSON', 422: 'Cannot be done',
  429: 'Too many requests', 500: 'Server error', 502: 'Bad gateway', 503: 'Unavailable',
};

// Turns a non-2xx response (status, content type, body text) into a problem object. Bodies that are not
// problem+json (a proxy's HTML page, an empty body) still give a readable title from the status.
export function problem_from_response(status, content_type, body_text) {
  const fallback = kStatusTitles[status] || `HTTP ${status}`;
  let parsed = null;
  if (body_text && /json/i.test(content_type || '')) {
    try { parsed = JSON.parse(body_text); } catch { parsed = null; }
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { type: 'about:blank', title: fallback, status, detail: '', field: '' };
  }
  return {
    type: typeof parsed.type === 'string' ? parsed.type : 'about:blank',
    title: typeof parsed.title === 'string' && parsed.title ? parsed.title : fallback,
    status: Number.isInteger(parsed.status) ? parsed.status : status,
    detail: typeof parsed.detail === 'string' ? parsed.detail : '',
    field: typeof parsed.field === 'string' ? parsed.field : '',
  };
}

export class Api {
  // base: URL prefix of the API ('/v1' when the dashboard is served by vpcd itself).
  constructor(token, { base = '/v1', fetch_impl = globalThis.fetch.bind(globalThis), on_unauthorized = null } = {}) {
    this.token_ = token;
    this.base_ = base;
    this.fetch_ = fetch_impl;
    this.on_unauthorized_ = on_unauthorized;
  }

  async request(method, path, { body, if_match, auth = true } = {}) {
    const headers = { Accept: 'application/json' };
    if (auth) headers.Authorization = `Bearer ${this.token_}`;
    if (body !== undefined) {
      headers['Content-Type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
    }
    if (if_match !== undefined && if_match !== null) headers['If-Match'] = String(if_match);
    let res;
    try {
      res = await this.fetch_(this.base_ + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError({ status: 0, title: 'Network error', detail: String(e.message || e), field: '' });
    }
    const text = await res.text();
    if (!res.ok) {
      const problem = problem_from_response(res.status, res.headers.get('Content-Type'), text);
      if (res.status === 401 && this.on_unauthorized_) this.on_unauthorized_(problem);
      throw new ApiError(problem);
    }
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError({ status: res.status, title: 'Bad response', detail: 'the server sent invalid JSON' });
    }
  }

  get(path) { return this.request('GET', path); }
  post(path, body) { return this.request('POST', path, { body }); }
  patch(path, body, if_match) { return this.request('PATCH', path, { body, if_match }); }
  del(path, if_match) { return this.request('DELETE', path, { if_match }); }
  health() { return this.request('GET', '/health', { auth: false }); }

  // GET of a streamed body (packet capture): the fetch Response once its status is 2xx, for reading res.body as it
  // arrives; a problem+json answer throws ApiError like request(). `signal` aborts it (the server sees a hang-up).
  async open_stream(path, signal) {
    let res;
    try {
      res = await this.fetch_(this.base_ + path, {
        method: 'GET', headers: { Authorization: `Bearer ${this.token_}` }, cache: 'no-store', signal,
      });
    } catch (e) {
      if (e?.name === 'AbortError') throw e;
      throw new ApiError({ status: 0, title: 'Network error', detail: String(e.message || e), field: '' });
    }
    if (!res.ok) {
      const problem = problem_from_response(res.status, res.headers.get('Content-Type'), await res.text());
      if (res.status === 401 && this.on_unauthorized_) this.on_unauthorized_(problem);
      throw new ApiError(problem);
    }
    return res;
  }

  // Every item of a collection, following limit/offset pages until `total` is reached.
  async list_all(kind, params = {}) {
    const items = [];
    const limit = 1000;
    for (let offset = 0; ; offset += limit) {
      const q = new URLSearchParams({ ...params, limit: String(limit), offset: String(offset) });
      const page = await this.get(`/${kind}?${q}`);
      const got = Array.isArray(page?.items) ? page.items : [];
      items.push(...got);
      const total = Number.isInteger(page?.total) ? page.total : items.length;
      if (got.length === 0 || items.length >= total) return items;
    }
  }
}

// Who the token is and what the box carries out: GET /v1/whoami -> { role: 'admin'|'viewer', token_id,
// capabilities: { NAME: bool } } (a capability that is false answers 501 on writes; its forms stay hidden). A read:
// no probe write, no audit event, no failed request in the console. A 401 propagates (bad token).
export async function whoami(api) {
  const who = await api.get('/whoami');
  if (!who || (who.role !== 'admin' && who.role !== 'viewer')) {
    throw new ApiError({ status: 0, title: 'Bad response', detail: 'GET /v1/whoami gave no role' });
  }
  return { role: who.role, token_id: String(who.token_id || ''),
    capabilities: who.capabilities && typeof who.capabilities === 'object' ? who.capabilities : {} };
}
