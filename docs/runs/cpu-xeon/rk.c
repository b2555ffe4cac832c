#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <omp.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define K 576
#ifndef M
#define M 4
#endif
#ifndef NR
#define NR 4
#endif
static int PF;
static inline void rows(const float*w,const float*x,float*y){
  __m512 a[NR][M]; for(int r=0;r<NR;r++)for(int t=0;t<M;t++)a[r][t]=_mm512_setzero_ps();
  for(int c=0;c<K;c+=16){
    if(PF && (c&15)==0) for(int r=0;r<NR;r++)_mm_prefetch((const char*)(w+r*K+c+PF*NR*K),_MM_HINT_T1);
    __m512 wv[NR]; for(int r=0;r<NR;r++)wv[r]=_mm512_loadu_ps(w+r*K+c);
    for(int t=0;t<M;t++){__m512 xv=_mm512_loadu_ps(x+t*K+c); for(int r=0;r<NR;r++)a[r][t]=_mm512_fmadd_ps(xv,wv[r],a[r][t]);}}
  for(int r=0;r<NR;r++)for(int t=0;t<M;t++)y[r*M+t]=_mm512_reduce_add_ps(a[r][t]);
}
int main(int argc,char**argv){
  size_t N=atoi(argv[2]), sets=atoi(argv[3]); size_t per=N*K; PF=atoi(argv[1]);
  float*w=aligned_alloc(64,per*sets*4); float x[M*K]; float*y=malloc(N*M*4*sets);
  #pragma omp parallel for
  for(size_t i=0;i<per*sets;i++)w[i]=(float)(i&1023)*1e-3f;
  for(int i=0;i<M*K;i++)x[i]=i*1e-4f;
  double best=1e9; int reps=sets>1?24:2000;
  for(int rep=0;rep<reps;rep++){
    float*W=w+(rep%sets)*per; float*Y=y+(rep%sets)*N*M;
    double t=now();
    #pragma omp parallel
    {
      int T=omp_get_num_threads(), id=omp_get_thread_num();
      size_t r0=id*N/T, r1=(id+1)*N/T;
      for(size_t r=r0;r+NR<=r1;r+=NR) rows(W+r*K,x,Y+r*M);
    }
    double dt=now()-t; if(dt<best)best=dt;
  }
  printf("M %d NR %d pf %d N %zu: %.3f ms %.1f GB/s\n",M,NR,PF,N,best*1e3,per*4/best/1e9);
}
