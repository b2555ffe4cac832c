import csv,sys,statistics as st
from collections import defaultdict
def load(f):
    calls=defaultdict(list)
    for r in csv.DictReader(open(f)):
        calls[int(r['call'])].append({k:int(v) for k,v in r.items()})
    return calls
for f in sys.argv[1:]:
    c=load(f); ks=sorted(c)
    print('==',f)
    agg=defaultdict(list)
    for i in ks[8:]:
        prev=c.get(i-1)
        if not prev: continue
        pe=max(b['end_ns'] for b in prev)
        bl=c[i]
        early=[b for b in bl if b['start_ns']<pe]; late=[b for b in bl if b['start_ns']>=pe]
        e=max(b['end_ns'] for b in bl)
        agg['period'].append(e-pe)
        agg['early_end_med'].append(st.median([b['end_ns']-pe for b in early]) if early else float('nan'))
        agg['late_start_med'].append(st.median([b['start_ns']-pe for b in late]) if late else float('nan'))
        agg['late_end_med'].append(st.median([b['end_ns']-pe for b in late]) if late else float('nan'))
        # per tile (bx): last end vs others
        tiles=defaultdict(list)
        for b in bl: tiles[b['bx']].append(b['end_ns'])
        if max(len(v) for v in tiles.values())>1:
            gap=[max(v)-sorted(v)[-2] for v in tiles.values()]
            agg['lastblock_gap_med'].append(st.median(gap))
            agg['tile_end_first'].append(st.median([min(v)-pe for v in tiles.values()]))
        ends=sorted(b['end_ns']-pe for b in bl)
        for q in (10,50,90,99):
            agg[f'end_p{q}'].append(ends[min(len(ends)-1,len(ends)*q//100)])
        agg['end_max'].append(ends[-1])
    print('  '+' '.join(f"{k}={st.mean([x for x in v if x==x])/1e3:.2f}" for k,v in agg.items() if [x for x in v if x==x]))
