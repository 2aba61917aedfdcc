import { textSource } from '../src/data/sources.ts';
for (const d of textSource('brown').documents()) { const m = d.match(/.{20}\S\/(at|nn|nns|np|in|jj|vbd|vbn|cc|rb|pps)(-tl|-hl)?\b.{10}/g); if (m) console.log(m); }
