import json,math,sys
for kid in ['avx512:m1:t2','avx512:m4:t2']:
    print('==',kid,'  speedup vs default (old r1, old r2 | new r1, new r2), tuned us')
    d={}
    for g in ['old','new']:
        for r in [1,2]:
            d[g,r]={s['problem']:s for s in json.load(open(f'/tmp/ab/k-{g}-{kid}-{r}.json'))['shapes']}
    gm={'old':[], 'new':[]}
    for p in d['old',1]:
        sp=[d[g,r][p]['speedup'] for g in ['old','new'] for r in [1,2]]
        us=[[x for x in d[g,r][p]['kernels'] if x['role']=='tuned'][0]['median_us'] for g in ['old','new'] for r in [1,2]]
        gm['old']+= sp[:2]; gm['new']+=sp[2:]
        print(f"{p.replace('f32 TN ',''):22s}", ' '.join(f'{x:5.2f}' for x in sp[:2]),'|',' '.join(f'{x:5.2f}' for x in sp[2:]), '  us', ' '.join(f'{x:7.0f}' for x in us))
    for g in gm: print(g, 'geomean speedup', round(math.exp(sum(map(math.log,gm[g]))/len(gm[g])),3))
