#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <omp.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define K 576
#define M 4
static inline void row(const float*w,const float*x,float*y){
  __m512 a0[M],a1[M]; for(int t=0;t<M;t++){a0[t]=_mm512_setzero_ps();a1[t]=_mm512_setzero_ps();}
  for(int c=0;c<K;c+=32){__m512 w0=_mm512_loadu_ps(w+c),w1=_mm512_loadu_ps(w+c+16);
    for(int t=0;t<M;t++){a0[t]=_mm512_fmadd_ps(_mm512_loadu_ps(x+t*K+c),w0,a0[t]);a1[t]=_mm512_fmadd_ps(_mm512_loadu_ps(x+t*K+c+16),w1,a1[t]);}}
  for(int t=0;t<M;t++)y[t]=_mm512_reduce_add_ps(_mm512_add_ps(a0[t],a1[t]));
}
int main(int argc,char**argv){
  size_t N=49152, sets=8; size_t per=N*K;
  float*w=aligned_alloc(64,per*sets*4); float x[M*K]; float*y=malloc(N*M*4*sets);
  #pragma omp parallel for
  for(size_t i=0;i<per*sets;i++)w[i]=(float)(i&1023)*1e-3f;
  for(int i=0;i<M*K;i++)x[i]=i*1e-4f;
  int streams=atoi(argv[1]); int pf=atoi(argv[2]);
  double best=1e9;
  for(int rep=0;rep<24;rep++){
    float*W=w+(rep%sets)*per; float*Y=y+(rep%sets)*N*M;
    double t=now();
    #pragma omp parallel
    {
      int T=omp_get_num_threads(), id=omp_get_thread_num();
      size_t r0=id*N/T, r1=(id+1)*N/T; size_t nr=r1-r0, sl=nr/streams;
      for(size_t i=0;i<sl;i++) for(int s=0;s<streams;s++){ size_t r=r0+s*sl+i;
        const float*p=W+r*K; if(pf) for(int l=0;l<K*4;l+=64)_mm_prefetch((const char*)p+pf*K*4+l,_MM_HINT_T0);
        row(p,x,Y+r*M);}
    }
    double dt=now()-t; if(dt<best)best=dt;
  }
  printf("streams %d pf %d rows: %.2f ms %.1f GB/s\n",streams,pf,best*1e3,per*4/best/1e9);
}
