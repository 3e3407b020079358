// Zero tests over 256 MiB: a JS word loop per page, OR-folded words, Buffer.compare and
// Buffer.equals against a 1 MiB zero buffer, Float64 words, and Buffer.compare on memory never
// touched. `node scripts/perf/zero-test.mjs`; three runs of each.
const N=256*1024*1024;
const ram=new Uint8Array(N); ram.fill(0); // touched
const w=new Uint32Array(ram.buffer);
function t(name,f){for(let r=0;r<3;r++){const s=process.hrtime.bigint();const x=f();const ms=Number(process.hrtime.bigint()-s)/1e6;console.log(name,ms.toFixed(1),'ms',(N/ms/1e6).toFixed(2),'GB/s',x);}}
t('u32 per page',()=>{let z=0;for(let p=0;p<N/4096;p++){let ok=true;const b=p*1024;for(let k=0;k<1024;k++)if(w[b+k]!==0){ok=false;break;}if(ok)z++;}return z;});
t('u32 or8',()=>{let z=0;for(let p=0;p<N/4096;p++){let acc=0;const b=p*1024;for(let k=b;k<b+1024;k+=8)acc|=w[k]|w[k+1]|w[k+2]|w[k+3]|w[k+4]|w[k+5]|w[k+6]|w[k+7];if(acc===0)z++;}return z;});
const zero=Buffer.alloc(1<<20);const B=Buffer.from(ram.buffer);
t('Buffer.compare 1MiB',()=>{let z=0;for(let o=0;o<N;o+=1<<20)if(B.compare(zero,0,1<<20,o,o+(1<<20))===0)z++;return z;});
t('Buffer.equals sub 1MiB',()=>{let z=0;for(let o=0;o<N;o+=1<<20)if(zero.equals(B.subarray(o,o+(1<<20))))z++;return z;});
const f64=new Float64Array(ram.buffer);
t('f64 per page',()=>{let z=0;for(let p=0;p<N/4096;p++){let ok=true;const b=p*512;for(let k=0;k<512;k++)if(f64[b+k]!==0){ok=false;break;}if(ok)z++;}return z;});
const fresh=new Uint8Array(N);const FB=Buffer.from(fresh.buffer);
t('fresh Buffer.compare',()=>{let z=0;for(let o=0;o<N;o+=1<<20)if(FB.compare(zero,0,1<<20,o,o+(1<<20))===0)z++;return z;});
